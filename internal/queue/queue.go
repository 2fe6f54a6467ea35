// Package queue is scanagent's durable offline queue: one bbolt file holding
// the pending scan records, the dead letters, the rejected frames, the
// delivered total and the platform token, with a one-entry journal in front
// of it for the two hot writes (journal.go).
//
// Writes are group commits, one at a time: the writer that finds nobody
// committing commits in its own goroutine, taking along whatever other work
// is queued by then (see lead). Enqueues and deliveries are made durable
// with one journal sync and applied to bbolt right after; every other write
// is a bbolt transaction. A record is durable when Enqueue returns nil; a
// write that fails (disk full, file size limit, I/O error) is reported to
// every caller in it as ErrWrite and stored nothing. Health tells whether
// the queue is full or its last write failed. The queue returns errors and
// never logs; a panic inside bbolt (a damaged file) is turned into
// ErrCorrupt.
//
// Maintenance works on files, not on an open Queue: Compact rewrites a file
// without its free pages (agent stopped), Salvage copies the readable
// records of a damaged file into a live Queue.
package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Bucket and meta key names. They are part of the file format.
var (
	bucketPending   = []byte("pending")
	bucketDead      = []byte("dead")
	bucketRejected  = []byte("rejected")
	bucketDelivered = []byte("delivered")
	bucketMeta      = []byte("meta")

	metaToken          = []byte("token")
	metaDeliveredTotal = []byte("delivered_total")
	metaPendingN       = []byte("pending_n")
	metaDeadN          = []byte("dead_n")
	metaRejectedN      = []byte("rejected_n")
	metaDeliveredN     = []byte("delivered_n") // history kept, not the total
)

var (
	// ErrFull is returned by Enqueue when max_pending records are waiting.
	ErrFull = errors.New("queue full: max_pending records are waiting for upload")
	// ErrNotFound is returned for an ID that is in none of the buckets asked.
	ErrNotFound = errors.New("no such record")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("queue closed")
	// ErrCorrupt wraps any sign that the database file is damaged.
	ErrCorrupt = errors.New("queue database is damaged")
	// ErrLocked is returned by Open when another process holds the file.
	ErrLocked = errors.New("queue database is in use by another process (is the agent running?)")
	// ErrWrite wraps a failed commit (disk full, file size limit, I/O
	// error): nothing of that commit was stored; the file stays usable.
	ErrWrite = errors.New("queue database write failed")
)

// appendFill is the pending bucket's fill percent: its keys only ever grow
// (NextSequence), so full pages waste nothing and halve the file of a large
// backlog compared with bbolt's default of 0.5.
const appendFill = 1.0

// DefaultMaxRejected bounds the rejected bucket; the oldest are pruned.
const DefaultMaxRejected = 10000

// Options tune a Queue; the zero value means the defaults.
type Options struct {
	MaxPending    int           // 0 = unlimited
	KeepDelivered int           // delivered records kept as history; 0 = delete
	MaxRejected   int           // 0 = DefaultMaxRejected
	LockTimeout   time.Duration // waiting for the file lock; 0 = 1s
	ReadOnly      bool          // for inspection while stopped
	// NoNewJournal keeps Open from creating the journal file: for commands
	// run by hand (perhaps as root) while the agent is stopped, so that the
	// file is always created by the agent's own user. An existing journal
	// is used as usual.
	NoNewJournal bool
	Now          func() time.Time // nil = time.Now

	// journalFloor: journal generations up to this one were applied to a
	// database that OpenOrQuarantine moved aside.
	journalFloor uint64
}

// Queue is an open queue database.
type Queue struct {
	db   *bolt.DB
	path string
	opts Options
	now  func() time.Time

	wake chan struct{}

	omu     sync.Mutex // guards queued, leading and closed
	idle    sync.Cond  // on omu: broadcast when leading turns false
	queued  []*op      // handed in, not yet taken into a commit
	leading bool       // a goroutine is committing and will take queued
	closed  bool
	kick    chan struct{} // hands the lead to the committer goroutine
	done    chan struct{} // closed when the committer goroutine ends

	// Owned by the leader (see lead).
	journal   *journal // nil: every write is a bbolt transaction
	unapplied *entry   // written to the journal, not yet to bbolt
	retrying  bool     // a retry of a failed apply is scheduled

	journaled int // ReadOnly: records in a journal entry not yet applied

	amu      sync.Mutex
	caughtUp sync.Cond // on amu: broadcast when settled grows
	wrote    uint64    // generation of the last journal entry written
	settled  uint64    // generation of the last entry whose apply was tried
	burnGen  uint64    // a generation a failed journal write may have left; see commitJournaled

	hmu      sync.Mutex // guards health and pendingN
	health   Health
	pendingN uint64        // pending count as of the last successful commit
	changed  chan struct{} // signalled when Health.Full or Health.WriteFailed flips
}

type op struct {
	fn func(tx *bolt.Tx) error // the work as a bbolt transaction

	// The journal's form of the same work (see journal.go): records to
	// enqueue (EnqueueBatch) or delivered IDs (Deliver).
	recs   []Record
	ids    []uint64
	stored int // of recs

	err  error
	done chan struct{}
}

// Open opens (creating if needed) the queue file at path, checks it for
// consistency and starts the committer. A damaged file yields an error
// wrapping ErrCorrupt; see OpenOrQuarantine.
func Open(path string, opts Options) (q *Queue, err error) {
	if opts.LockTimeout == 0 {
		opts.LockTimeout = time.Second
	}
	if opts.MaxRejected == 0 {
		opts.MaxRejected = DefaultMaxRejected
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	if !opts.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
	} else if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open queue %s: %w", path, err)
	}
	if err := checkNotTruncated(path); err != nil {
		return nil, fmt.Errorf("open queue %s: %w", path, err)
	}
	db, err := openBolt(path, opts)
	if err != nil {
		return nil, openError("open queue", path, err)
	}
	if !opts.ReadOnly {
		if err := keepOwner(path); err != nil {
			db.Close()
			return nil, fmt.Errorf("open queue: %w", err)
		}
	}
	q = &Queue{db: db, path: path, opts: opts, now: now,
		wake: make(chan struct{}, 1), kick: make(chan struct{}, 1), done: make(chan struct{}),
		changed: make(chan struct{}, 1)}
	q.idle.L = &q.omu
	q.caughtUp.L = &q.amu
	if err := q.check(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open queue %s: %w", path, err)
	}
	if !opts.ReadOnly {
		if err := protect(func() error { return db.Update(initBuckets) }); err != nil {
			db.Close()
			if !errors.Is(err, ErrCorrupt) {
				err = fmt.Errorf("%w: %v", ErrWrite, err)
			}
			return nil, fmt.Errorf("open queue %s: %w", path, err)
		}
	}
	if err := q.view(func(tx *bolt.Tx) error {
		q.pendingN = counter(tx, metaPendingN)
		dropPages(tx) // check and initBuckets read every page
		return nil
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("open queue %s: %w", path, err)
	}
	q.health.Full = q.isFull(q.pendingN)
	if err := q.openJournal(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open queue %s: %w", path, err)
	}
	go q.commitLoop()
	return q, nil
}

// openJournal applies an entry the journal holds beyond journal_gen (scans
// acknowledged before a crash) and opens the journal for writing. A journal
// that cannot be created (a full disk) leaves the queue working without it.
// Read-only, it only counts the records such an entry holds.
func (q *Queue) openJournal() error {
	path := journalPath(q.path)
	var applied uint64
	if err := q.view(func(tx *bolt.Tx) error { applied = counter(tx, metaJournalGen); return nil }); err != nil {
		return err
	}
	applied = max(applied, q.opts.journalFloor)
	if q.opts.ReadOnly {
		e, ok, err := readJournal(path)
		if ok && e.Gen > applied {
			q.journaled = len(e.Enq)
		}
		return err
	}
	j, e, ok, err := openJournal(path, !q.opts.NoNewJournal)
	if err != nil {
		return fmt.Errorf("journal %s: %w", path, err)
	}
	if j != nil {
		j.gen = max(applied, e.Gen)
	}
	q.journal = j
	if ok && e.Gen > applied {
		q.unapplied = &e
		// An entry that cannot be applied yet (a full disk) stays in the
		// journal and is retried; writes fail until it is applied.
		err := q.apply()
		if errors.Is(err, ErrCorrupt) {
			q.omu.Lock()
			q.closed = true // stops the retry
			q.omu.Unlock()
			q.closeJournal()
			return fmt.Errorf("applying the journal %s: %w", path, err)
		}
	}
	if ok && q.unapplied == nil && q.journal != nil {
		// Applied, before or just now: cleared for good, so that a fresh
		// database (after this one is found damaged) does not apply it
		// again.
		q.journal.clear()
		_ = datasync(q.journal.f)
	}
	return nil
}

// openBolt opens the bbolt file under recover. It makes sure the file it
// locked is still the one at path: `queue compact` renames a new file over
// the old one, and an opener that was waiting for the old file's lock would
// otherwise write into a file that no longer has a name.
func openBolt(path string, opts Options) (*bolt.DB, error) {
	for try := 0; ; try++ {
		var f *os.File
		var db *bolt.DB
		err := protect(func() error {
			var err error
			db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout, ReadOnly: opts.ReadOnly,
				OpenFile: func(name string, flag int, mode os.FileMode) (*os.File, error) {
					var err error
					f, err = os.OpenFile(name, flag, mode)
					return f, err
				}})
			return err
		})
		if err != nil {
			return nil, err
		}
		held, err1 := f.Stat()
		named, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, named) || try == 2 {
			return db, nil
		}
		db.Close()
	}
}

// openError classifies an error of openBolt: ErrLocked, ErrCorrupt or as is.
func openError(what, path string, err error) error {
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("%s %s: %w", what, path, ErrLocked)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		return fmt.Errorf("%s %s: %w: %v", what, path, ErrCorrupt, err)
	}
	return fmt.Errorf("%s %s: %w", what, path, err)
}

// OpenOrQuarantine opens path; if the file is damaged it is renamed to
// path.corrupt-<timestamp> and a fresh queue is created in its place. The
// returned string is the quarantined file's path ("" when nothing was moved).
func OpenOrQuarantine(path string, opts Options) (*Queue, string, error) {
	q, err := Open(path, opts)
	if err == nil || !errors.Is(err, ErrCorrupt) {
		return q, "", err
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	moved, rerr := moveAside(path, path+".corrupt-"+now().UTC().Format("20060102T150405Z"))
	if rerr != nil {
		return nil, "", fmt.Errorf("%w; moving it aside failed too: %v", err, rerr)
	}
	// The journal's entry goes into the fresh file, unless the damaged one
	// says it holds it already (salvage would bring those scans again).
	opts.journalFloor = appliedJournalGen(moved)
	q, err2 := Open(path, opts)
	if err2 != nil {
		return nil, moved, err2
	}
	return q, moved, nil
}

// moveAside renames path to name, or to name-2, name-3, … when name is
// taken: it never replaces a file (the clock of a terminal without a clock
// battery repeats itself, and an earlier quarantined file holds scans). A
// hard link claims the new name atomically; where the file system has none,
// the name is checked first (only this process moves the file: it holds no
// lock, but the agent is the only one that quarantines).
func moveAside(path, name string) (string, error) {
	for n := 1; ; n++ {
		to := name
		if n > 1 {
			to = fmt.Sprintf("%s-%d", name, n)
		}
		err := os.Link(path, to)
		if err == nil {
			if err := os.Remove(path); err != nil {
				os.Remove(to)
				return "", err
			}
			syncDir(filepath.Dir(path))
			return to, nil
		}
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		// No hard links here (FAT, some network file systems).
		if _, serr := os.Lstat(to); serr == nil {
			continue
		} else if !errors.Is(serr, fs.ErrNotExist) {
			return "", serr
		}
		if err := os.Rename(path, to); err != nil {
			return "", err
		}
		syncDir(filepath.Dir(path))
		return to, nil
	}
}

// appliedJournalGen reads journal_gen from a damaged queue file, or 0 when
// it cannot: then the journal's entry is applied again (duplicates, never
// losses).
func appliedJournalGen(path string) (gen uint64) {
	// A page past the end of a truncated file faults: a panic for protect.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	_ = protect(func() error {
		db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: time.Second})
		if err != nil {
			return err
		}
		defer db.Close()
		return db.View(func(tx *bolt.Tx) error { gen = counter(tx, metaJournalGen); return nil })
	})
	return gen
}

// protect runs fn, turning a bbolt panic (a damaged page) into ErrCorrupt.
func protect(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
	}()
	return fn()
}

// check runs bbolt's consistency check and reads every record once.
func (q *Queue) check() error {
	return protect(func() error {
		return q.db.View(func(tx *bolt.Tx) error {
			for cerr := range tx.Check() {
				return fmt.Errorf("%w: %v", ErrCorrupt, cerr)
			}
			return nil
		})
	})
}

func initBuckets(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketPending, bucketDead, bucketRejected, bucketDelivered, bucketMeta} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	// The counters are derived state: recompute them at every open so a file
	// written by an older version, or repaired by hand, is always right.
	meta := tx.Bucket(bucketMeta)
	for _, c := range []struct{ key, bucket []byte }{
		{metaPendingN, bucketPending}, {metaDeadN, bucketDead}, {metaRejectedN, bucketRejected},
		{metaDeliveredN, bucketDelivered},
	} {
		n := uint64(tx.Bucket(c.bucket).Stats().KeyN)
		if err := meta.Put(c.key, u64(n)); err != nil {
			return err
		}
	}
	return nil
}

// Path is the database file.
func (q *Queue) Path() string { return q.path }

// Wake is signalled after every commit that added a pending record.
func (q *Queue) Wake() <-chan struct{} { return q.wake }

// Close waits for the work already handed in to be committed, then closes
// the file.
func (q *Queue) Close() error {
	q.omu.Lock()
	if q.closed {
		q.omu.Unlock()
		return nil
	}
	q.closed = true
	for q.leading {
		q.idle.Wait()
	}
	q.leading = true
	q.omu.Unlock()
	close(q.kick)
	<-q.done
	// Best effort: an entry left in the journal is applied at the next Open.
	_ = q.apply()
	q.closeJournal()
	return q.db.Close()
}

// maxBatch bounds the work taken into one commit.
const maxBatch = 256

// Group commit without a hand-off when the queue is quiet: the writer that
// finds nobody committing commits its own work at once, in its own
// goroutine, together with whatever else is queued by then. Work handed in
// while a commit runs waits for the next one. When the leader's own work is
// done and more is queued, the lead passes to the committer goroutine, so a
// writer never waits for other writers' commits after its own.
//
// A single scan therefore costs one journal sync and no goroutine switch
// before its answer (on an idle machine each switch wakes a sleeping CPU);
// the journal's apply then runs in the committer goroutine. A burst still
// shares commits.

// commitLoop takes the lead when a leader hands it over.
func (q *Queue) commitLoop() {
	defer close(q.done)
	for range q.kick {
		q.lead(nil)
	}
}

// lead commits queued work until own is done (nil: until nothing is
// queued). The caller must have set q.leading. A journal entry is written
// only when the previous one is applied; a waiting entry is applied in the
// same transaction as the next batch (commit).
func (q *Queue) lead(own *op) {
	for {
		q.omu.Lock()
		n := min(len(q.queued), maxBatch)
		if n == 0 && q.unapplied == nil {
			q.stopLeading()
			return
		}
		batch := slices.Clone(q.queued[:n])
		q.queued = slices.Delete(q.queued, 0, n)
		q.omu.Unlock()
		var err error
		if n == 0 || q.unapplied != nil || !q.commitJournaled(batch) {
			err = q.commit(batch) // with the journal's entry first, if any
		}
		if n == 0 && err != nil {
			// Nothing queued and the apply failed: the scheduled retry
			// takes over, unless work came in meanwhile.
			q.omu.Lock()
			if len(q.queued) == 0 {
				q.stopLeading()
				return
			}
			q.omu.Unlock()
			continue
		}
		if own != nil && slices.Contains(batch, own) {
			q.omu.Lock()
			if len(q.queued) == 0 && q.unapplied == nil {
				q.stopLeading()
				return
			}
			q.omu.Unlock()
			q.kick <- struct{}{}
			return
		}
	}
}

// stopLeading gives up the lead; q.omu must be held, and is released.
func (q *Queue) stopLeading() {
	q.leading = false
	q.idle.Broadcast()
	q.omu.Unlock()
}

// commitJournaled stores batch with one journal write when every op in it
// has a journal form, and answers it; the entry is applied to bbolt by the
// next turn of lead. It reports false, having done nothing, when batch must
// be a bbolt transaction instead.
func (q *Queue) commitJournaled(batch []*op) bool {
	if q.journal == nil {
		return false
	}
	for _, o := range batch {
		if o.recs == nil && o.ids == nil {
			return false
		}
	}
	var seq, pending uint64
	var present map[uint64]bool // delivered IDs still pending
	if err := protect(func() error {
		return q.db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketPending)
			seq, pending = b.Sequence(), counter(tx, metaPendingN)
			for _, o := range batch {
				for _, id := range o.ids {
					if present == nil {
						present = make(map[uint64]bool)
					}
					present[id] = b.Get(u64(id)) != nil
				}
			}
			return nil
		})
	}); err != nil {
		return false // the transaction reports it
	}
	e := &entry{Gen: q.journal.gen + 1}
	for _, o := range batch {
		if o.ids != nil {
			e.Del = append(e.Del, o.ids...)
			for _, id := range o.ids {
				if present[id] {
					present[id] = false
					pending--
				}
			}
			continue
		}
		n := q.fit(pending, len(o.recs))
		for i := range o.recs[:n] {
			seq++
			o.recs[i].ID = seq
			v, err := json.Marshal(&o.recs[i])
			if err != nil {
				return false
			}
			e.Enq = append(e.Enq, journalItem{ID: seq, V: v})
		}
		pending += uint64(n)
		o.stored, o.err = n, nil
		if n < len(o.recs) {
			o.err = ErrFull
		}
	}
	if len(e.Enq) > 0 || len(e.Del) > 0 {
		if err := q.journal.write(e); errors.Is(err, errTooBig) {
			return false
		} else if err != nil {
			// The entry may be in the file all the same (a failed sync),
			// and must never be applied: the bbolt transaction that now
			// stores the batch records its generation as applied. The
			// journal is not used again until the next Open.
			q.burnGen = e.Gen
			q.journal.clear()
			q.closeJournal()
			return false
		}
		q.unapplied = e
		q.amu.Lock()
		q.wrote = e.Gen
		q.amu.Unlock()
		q.noteCommit(pending, nil)
	}
	for _, o := range batch {
		close(o.done)
	}
	return true
}

func (q *Queue) closeJournal() {
	if q.journal != nil {
		q.journal.close()
		q.journal = nil
	}
}

// fit is how many of n records fit under MaxPending with pending waiting.
func (q *Queue) fit(pending uint64, n int) int {
	if q.opts.MaxPending <= 0 {
		return n
	}
	return int(min(uint64(n), uint64(q.opts.MaxPending)-min(pending, uint64(q.opts.MaxPending))))
}

// apply moves the journal's entry, if any, into bbolt.
func (q *Queue) apply() error {
	if q.unapplied == nil {
		return nil
	}
	return q.commit(nil)
}

// retryApply takes the lead, when nobody has it, to apply the journal.
func (q *Queue) retryApply() {
	q.omu.Lock()
	switch {
	case q.closed:
		q.omu.Unlock()
		return // Close applies it, or the next Open
	case q.leading:
		q.omu.Unlock()
		time.AfterFunc(time.Second, q.retryApply)
		return
	}
	q.leading = true
	q.omu.Unlock()
	q.retrying = false
	q.lead(nil)
}

// applyEntry adds e's records to the pending bucket and removes its
// delivered IDs, then records e's generation as applied. Applying an entry
// twice changes nothing more.
func applyEntry(tx *bolt.Tx, e *entry, keep func(tx *bolt.Tx, id uint64, v []byte) error) error {
	b := tx.Bucket(bucketPending)
	b.FillPercent = appendFill
	pending, seq := counter(tx, metaPendingN), b.Sequence()
	for _, it := range e.Enq {
		id, v := it.ID, []byte(it.V)
		if old := b.Get(u64(id)); old != nil {
			if bytes.Equal(old, v) {
				continue // applied already
			}
			// The ID went to another record meanwhile (it cannot, short of
			// a bug): keep both, this one at the end.
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("journal entry %d: %v", e.Gen, err)
			}
			id = max(seq, b.Sequence()) + 1
			r.ID = id
			var err error
			if v, err = json.Marshal(&r); err != nil {
				return err
			}
		}
		if err := b.Put(u64(id), v); err != nil {
			return err
		}
		pending++
		seq = max(seq, id)
	}
	if err := b.SetSequence(seq); err != nil {
		return err
	}
	if err := setCounter(tx, metaPendingN, pending); err != nil {
		return err
	}
	if err := deliverTx(tx, e.Del, keep); err != nil {
		return err
	}
	return setCounter(tx, metaJournalGen, e.Gen)
}

// commit runs batch in one bbolt transaction and answers it. The journal's
// entry, if one is waiting, is applied first in the same transaction, so
// work that comes in while an entry waits costs one commit, not two. If the
// commit fails the entry stays, and a retry is scheduled in case no other
// write comes to try again.
func (q *Queue) commit(batch []*op) error {
	e := q.unapplied
	var pending uint64
	err := protect(func() error {
		return q.db.Update(func(tx *bolt.Tx) error {
			if e != nil {
				if err := applyEntry(tx, e, q.keepDeliveredFn()); err != nil {
					return err
				}
			}
			if q.burnGen > counter(tx, metaJournalGen) {
				if err := setCounter(tx, metaJournalGen, q.burnGen); err != nil {
					return err
				}
			}
			for _, o := range batch {
				o.err = o.fn(tx)
			}
			pending = counter(tx, metaPendingN)
			return nil
		})
	})
	if err != nil && !errors.Is(err, ErrCorrupt) {
		err = fmt.Errorf("%w: %v", ErrWrite, err)
	}
	q.noteCommit(pending, err)
	if err == nil {
		q.burnGen = 0
	}
	if e != nil {
		if err != nil {
			if !q.retrying {
				q.retrying = true
				time.AfterFunc(time.Second, q.retryApply)
			}
		} else {
			q.unapplied = nil
			if q.journal != nil {
				q.journal.clear()
			}
			if len(e.Enq) > 0 {
				q.signal()
			}
		}
		q.amu.Lock()
		q.settled = e.Gen
		q.caughtUp.Broadcast()
		q.amu.Unlock()
	}
	for _, o := range batch {
		if err != nil {
			o.err = err
		}
		close(o.done)
	}
	return err
}

// write hands fn to the committer and waits until its transaction is durable.
// fn must check before it writes: an error it returns is reported to its
// caller alone and does not roll back the other work in the batch.
func (q *Queue) write(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	return q.submit(ctx, &op{fn: fn})
}

// submit hands o to the committer and waits until it is durable.
func (q *Queue) submit(ctx context.Context, o *op) error {
	if q.opts.ReadOnly {
		return errors.New("queue opened read-only")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	o.done = make(chan struct{})
	q.omu.Lock()
	if q.closed {
		q.omu.Unlock()
		return ErrClosed
	}
	q.queued = append(q.queued, o)
	lead := !q.leading
	q.leading = true
	q.omu.Unlock()
	if lead {
		q.lead(o) // returns once o is answered
		return o.err
	}
	// When ctx ends first, the work is withdrawn if no commit has taken it
	// yet; once taken, its outcome is awaited (one commit) and returned, so
	// the caller's answer (a scanner's ack) always says what was stored.
	select {
	case <-o.done:
		return o.err
	case <-ctx.Done():
	}
	q.omu.Lock()
	if i := slices.Index(q.queued, o); i >= 0 {
		q.queued = slices.Delete(q.queued, i, i+1)
		q.omu.Unlock()
		return ctx.Err()
	}
	q.omu.Unlock()
	<-o.done
	return o.err
}

func (q *Queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Enqueue stores r durably in the pending bucket, assigning r.ID and
// r.EnqueuedAt. It returns ErrFull when MaxPending records are waiting.
func (q *Queue) Enqueue(ctx context.Context, r *Record) error {
	_, err := q.EnqueueBatch(ctx, []*Record{r})
	return err
}

// EnqueueBatch stores recs durably in the pending bucket in one commit, in
// order, assigning each its ID and EnqueuedAt, and returns how many it
// stored. When fewer than len(recs) fit under MaxPending it stores the first
// ones that do and returns ErrFull; on any other error it stores none.
func (q *Queue) EnqueueBatch(ctx context.Context, recs []*Record) (int, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	now := q.now()
	o := &op{recs: make([]Record, len(recs))}
	for i, r := range recs {
		o.recs[i] = *r
		o.recs[i].EnqueuedAt = now
	}
	o.fn = func(tx *bolt.Tx) error {
		o.stored = 0
		n := q.fit(counter(tx, metaPendingN), len(o.recs))
		b := tx.Bucket(bucketPending)
		b.FillPercent = appendFill
		seq := b.Sequence()
		for i := range o.recs[:n] {
			o.recs[i].ID = seq + uint64(i) + 1
			if err := putRecord(tx, bucketPending, metaPendingN, &o.recs[i]); err != nil {
				return err
			}
		}
		if err := b.SetSequence(seq + uint64(n)); err != nil {
			return err
		}
		o.stored = n
		if n < len(o.recs) {
			return ErrFull
		}
		return nil
	}
	err := q.submit(ctx, o)
	if err != nil && !errors.Is(err, ErrFull) {
		return 0, err
	}
	for i := range o.stored {
		recs[i].ID, recs[i].EnqueuedAt = o.recs[i].ID, now
	}
	if o.stored > 0 {
		q.signal()
	}
	return o.stored, err
}

// Reject stores a rejected frame, pruning the oldest beyond MaxRejected.
func (q *Queue) Reject(ctx context.Context, rj *Rejection) error {
	rec := *rj
	if rec.Time.IsZero() {
		rec.Time = q.now()
	}
	err := q.write(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRejected)
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		rec.ID = RejectedID(id)
		v, err := json.Marshal(&rec)
		if err != nil {
			return err
		}
		if err := b.Put(u64(id), v); err != nil {
			return err
		}
		n := counter(tx, metaRejectedN) + 1
		c := b.Cursor()
		for k, _ := c.First(); k != nil && n > uint64(q.opts.MaxRejected); k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
			n--
		}
		return setCounter(tx, metaRejectedN, n)
	})
	if err == nil {
		rj.ID, rj.Time = rec.ID, rec.Time
	}
	return err
}

// Pending returns up to limit pending records with an ID greater than after,
// oldest first. It reads with a cursor: the backlog is never loaded whole. A
// record whose bytes do not decode is skipped and moved to dead (reason
// Unreadable, its bytes kept in Raw), so one damaged record never stops the
// others.
func (q *Queue) Pending(after uint64, limit int) ([]Record, error) {
	var out []Record
	var bad []uint64
	err := q.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketPending).Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				bad = append(bad, binary.BigEndian.Uint64(k))
				continue
			}
			out = append(out, r)
		}
		return nil
	})
	if err == nil && len(bad) > 0 && !q.opts.ReadOnly {
		// Best effort: if this write fails the next Pending tries again.
		_ = q.moveUnreadable(context.Background(), bad)
	}
	return out, err
}

// PendingRecord reads one pending record again; ErrNotFound when it is no
// longer pending (delivered, dropped, moved to dead or retried under a new
// ID).
func (q *Queue) PendingRecord(id uint64) (Record, error) {
	var r *Record
	err := q.view(func(tx *bolt.Tx) error {
		var err error
		r, err = getRecord(tx, bucketPending, id)
		return err
	})
	if err != nil {
		return Record{}, err
	}
	return *r, nil
}

// moveUnreadable moves the pending records ids whose bytes do not decode to
// dead.
func (q *Queue) moveUnreadable(ctx context.Context, ids []uint64) error {
	now := q.now()
	return q.write(ctx, func(tx *bolt.Tx) error {
		for _, id := range ids {
			v := tx.Bucket(bucketPending).Get(u64(id))
			if v == nil {
				continue
			}
			var r Record
			err := json.Unmarshal(v, &r)
			if err == nil {
				continue
			}
			dead := unreadableRecord(id, v, err)
			dead.DeadAt = now
			if err := deleteRecord(tx, bucketPending, metaPendingN, id); err != nil {
				return err
			}
			if err := putRecord(tx, bucketDead, metaDeadN, dead); err != nil {
				return err
			}
		}
		return nil
	})
}

// Deliver removes delivered records from the pending bucket in one commit,
// counting them in the delivered total (and keeping them as history when
// KeepDelivered > 0). IDs no longer pending are ignored.
func (q *Queue) Deliver(ctx context.Context, ids ...uint64) error {
	if len(ids) == 0 {
		return nil
	}
	keep := q.keepDeliveredFn()
	return q.submit(ctx, &op{ids: ids, fn: func(tx *bolt.Tx) error { return deliverTx(tx, ids, keep) }})
}

// keepDeliveredFn is how Deliver keeps history: nil when it keeps none.
func (q *Queue) keepDeliveredFn() func(tx *bolt.Tx, id uint64, v []byte) error {
	if q.opts.KeepDelivered <= 0 {
		return nil
	}
	return q.keepDelivered
}

func deliverTx(tx *bolt.Tx, ids []uint64, keep func(tx *bolt.Tx, id uint64, v []byte) error) error {
	if len(ids) == 0 {
		return nil
	}
	pending := tx.Bucket(bucketPending)
	var n uint64
	for _, id := range ids {
		v := pending.Get(u64(id))
		if v == nil {
			continue
		}
		if keep != nil {
			if err := keep(tx, id, v); err != nil {
				return err
			}
		}
		if err := pending.Delete(u64(id)); err != nil {
			return err
		}
		n++
	}
	if err := setCounter(tx, metaPendingN, counter(tx, metaPendingN)-n); err != nil {
		return err
	}
	return setCounter(tx, metaDeliveredTotal, counter(tx, metaDeliveredTotal)+n)
}

func (q *Queue) keepDelivered(tx *bolt.Tx, id uint64, v []byte) error {
	var r Record
	if err := json.Unmarshal(v, &r); err != nil {
		return nil // not kept as history; its delivery still counts
	}
	r.NextAttempt, r.LastError = time.Time{}, ""
	if err := putRecord(tx, bucketDelivered, metaDeliveredN, &r); err != nil {
		return err
	}
	c := tx.Bucket(bucketDelivered).Cursor()
	for k, _ := c.First(); k != nil && counter(tx, metaDeliveredN) > uint64(q.opts.KeepDelivered); k, _ = c.First() {
		if err := deleteRecord(tx, bucketDelivered, metaDeliveredN, binary.BigEndian.Uint64(k)); err != nil {
			return err
		}
	}
	return nil
}

// Kill moves a pending record to the dead bucket with the reason.
func (q *Queue) Kill(ctx context.Context, id uint64, reason string) error {
	now := q.now()
	return q.write(ctx, func(tx *bolt.Tx) error {
		r, err := getRecord(tx, bucketPending, id)
		if err != nil {
			return err
		}
		r.DeadReason, r.DeadAt, r.NextAttempt = reason, now, time.Time{}
		if err := deleteRecord(tx, bucketPending, metaPendingN, id); err != nil {
			return err
		}
		return putRecord(tx, bucketDead, metaDeadN, r)
	})
}

// Note records a failed attempt on a pending record: attempts (when counted),
// the redacted last error and the next attempt time, for `queue show`.
func (q *Queue) Note(ctx context.Context, id uint64, attempts int, lastErr string, next time.Time) error {
	return q.write(ctx, func(tx *bolt.Tx) error {
		r, err := getRecord(tx, bucketPending, id)
		if err != nil {
			return err
		}
		r.Attempts, r.LastError, r.NextAttempt = attempts, lastErr, next
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketPending).Put(u64(id), v)
	})
}

// Retried is what a retry of dead records did.
type Retried struct {
	Retried int `json:"retried"`        // moved back to pending
	Left    int `json:"left,omitempty"` // left dead because the queue is full
}

// RetryDead moves every dead record that fits under MaxPending back to
// pending and wakes the uploader for them. When the queue fills
// up on the way it stops, and reports the records left dead; it returns
// ErrFull only when none could move.
func (q *Queue) RetryDead(ctx context.Context) (Retried, error) {
	var res Retried
	err := q.write(ctx, func(tx *bolt.Tx) error {
		moved, err := q.retryTx(tx, nil)
		res = Retried{Retried: moved}
		if errors.Is(err, ErrFull) {
			res.Left = int(counter(tx, metaDeadN))
			if moved > 0 {
				return nil
			}
		}
		return err
	})
	if res.Retried > 0 && err == nil {
		q.signal()
	}
	return res, err
}

// retryTx moves the dead records ids (all when none) back to pending. A
// retried record gets a new ID at the end of the queue, its attempts reset;
// the dead reason is kept in LastError. A record whose bytes were unreadable
// is never retried (ErrState; skipped when retrying all).
func (q *Queue) retryTx(tx *bolt.Tx, ids []uint64) (moved int, err error) {
	dead := tx.Bucket(bucketDead)
	all := len(ids) == 0
	if all {
		c := dead.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			ids = append(ids, binary.BigEndian.Uint64(k))
		}
	}
	for _, id := range ids {
		r, err := getRecord(tx, bucketDead, id)
		if err == nil && r.Raw != nil {
			err = fmt.Errorf("record %d: its stored bytes are unreadable, so it cannot be uploaded; export it (queue export --dead) and drop it: %w", id, ErrState)
		}
		if err != nil && all && !errors.Is(err, ErrFull) {
			continue // the others still go
		}
		if err != nil {
			return moved, err
		}
		if q.opts.MaxPending > 0 && counter(tx, metaPendingN) >= uint64(q.opts.MaxPending) {
			return moved, ErrFull
		}
		if err := deleteRecord(tx, bucketDead, metaDeadN, id); err != nil {
			return moved, err
		}
		nid, err := tx.Bucket(bucketPending).NextSequence()
		if err != nil {
			return moved, err
		}
		r.ID, r.Attempts, r.LastError = nid, 0, "retried after: "+r.DeadReason
		r.DeadReason, r.DeadAt, r.NextAttempt = "", time.Time{}, time.Time{}
		if err := putRecord(tx, bucketPending, metaPendingN, r); err != nil {
			return moved, err
		}
		moved++
	}
	return moved, nil
}

// Token is the platform access token as kept in the database.
type Token struct {
	AccessToken string    `json:"access_token"`
	Expiry      time.Time `json:"expiry"`
	FetchedAt   time.Time `json:"fetched_at"`
}

// LoadToken returns the stored token (zero Token when none).
func (q *Queue) LoadToken() (Token, error) {
	var t Token
	err := q.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get(metaToken)
		if v == nil {
			return nil
		}
		return json.Unmarshal(v, &t)
	})
	return t, err
}

// SaveToken stores the token durably.
func (q *Queue) SaveToken(ctx context.Context, t Token) error {
	v, err := json.Marshal(&t)
	if err != nil {
		return err
	}
	return q.write(ctx, func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(metaToken, v) })
}

// view reads the queue as its writers left it: it first waits for the
// journal's entry, if one was just written, to reach bbolt (one commit), so
// a record Enqueue confirmed is always seen.
func (q *Queue) view(fn func(tx *bolt.Tx) error) error {
	q.amu.Lock()
	for wrote := q.wrote; q.settled < wrote; {
		q.caughtUp.Wait()
	}
	q.amu.Unlock()
	return protect(func() error { return q.db.View(fn) })
}

func u64(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

func counter(tx *bolt.Tx, key []byte) uint64 {
	b := tx.Bucket(bucketMeta)
	if b == nil {
		return 0
	}
	v := b.Get(key)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func setCounter(tx *bolt.Tx, key []byte, n uint64) error {
	return tx.Bucket(bucketMeta).Put(key, u64(n))
}

func getRecord(tx *bolt.Tx, bucket []byte, id uint64) (*Record, error) {
	v := tx.Bucket(bucket).Get(u64(id))
	if v == nil {
		return nil, fmt.Errorf("record %d: %w", id, ErrNotFound)
	}
	var r Record
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("%w: record %d: %v", ErrCorrupt, id, err)
	}
	return &r, nil
}

func putRecord(tx *bolt.Tx, bucket, countKey []byte, r *Record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucket).Put(u64(r.ID), v); err != nil {
		return err
	}
	return setCounter(tx, countKey, counter(tx, countKey)+1)
}

func deleteRecord(tx *bolt.Tx, bucket, countKey []byte, id uint64) error {
	if err := tx.Bucket(bucket).Delete(u64(id)); err != nil {
		return err
	}
	n := counter(tx, countKey)
	if n > 0 {
		n--
	}
	return setCounter(tx, countKey, n)
}
