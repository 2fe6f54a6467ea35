// Package queue is scanagent's durable offline queue: one bbolt file holding
// the pending scan records, the dead letters, the rejected frames, the
// delivered total and the platform token, with a two-slot journal in front
// of it for the two hot writes (journal.go).
//
// Writes are group commits, one at a time: the writer that finds nobody
// committing commits in its own goroutine, taking along whatever other work
// is queued by then (see lead). Enqueues and deliveries are made durable
// with one journal sync; enqueues are applied to bbolt right after,
// deliveries in groups (held, see journal.go); every other write is a
// bbolt transaction. A record is durable when Enqueue returns nil; a
// write that fails (disk full, file size limit, I/O error) is reported to
// every caller in it as ErrWrite and stored nothing. Health tells whether
// the queue is full or its last write failed. The queue returns errors and
// never logs; a panic inside bbolt (a damaged file) is turned into
// ErrCorrupt.
//
// Maintenance: Compact rewrites a file without its free pages (agent
// stopped); an open Queue also rewrites its own file once a backlog has
// drained out of it (compact.go, shouldCompact). Salvage copies the
// readable records of a damaged file into a live Queue.
//
// The files, by job:
//   - queue.go: Options, the Queue, Open and Close;
//   - commit.go: the commit engine (group commit, the leader, the journal's
//     apply, readers waiting for it), with its locking rules;
//   - journal.go: the journal file (two slots) and held deliveries;
//   - record.go: the types (Record, Rejection, Item, State, Ref: 12 or r12);
//   - records.go: what each operation does to the buckets, and the rules of
//     the technician's commands (what may be retried, dropped, paged, shown);
//   - layout.go: the file on disk (buckets and counters, opening, bbolt's
//     meta page, quarantine of a damaged file);
//   - health.go: Health;
//   - compact.go, salvage.go, salvage_read.go: maintenance;
//   - owner_*.go: a file created by root keeps the data dir's owner.
package queue

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"scanagent/internal/clock"
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
	Now          func() time.Time // nil = Clock.Now
	Clock        clock.Clock      // nil = the system clock
	// Compacted, if set, is told of every rewrite the queue makes of its
	// file once a backlog has drained out of it (compact.go,
	// shouldCompact), or of the rewrite's failure. It runs in the leader
	// and must not call the queue.
	Compacted func(Compaction, error)

	// The bounds of that rewrite (tests); 0 = the defaults.
	compactMinFree, compactMaxLive int64

	// journalFloor: journal generations up to this one were applied to a
	// database that OpenOrQuarantine moved aside.
	journalFloor uint64
}

// Queue is an open queue database.
type Queue struct {
	dbmu sync.RWMutex // guards db: read holds it; the leader swaps db when it compacts the file
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
	// hold: unapplied holds deliveries alone and may wait (journal.go,
	// "Held deliveries"), since heldSince. heldIDs are the delivered IDs
	// of unapplied, each pending in bbolt when it was journaled.
	hold      bool
	heldSince time.Time
	heldIDs   map[uint64]struct{}

	clock        clock.Clock // for the hold's timer
	compactAfter time.Time   // no automatic compaction before (one failed)
	compactDue   bool        // the committer compacts the file before more work
	flushDue     atomic.Bool // the held entry is to be applied now
	flushArmed   atomic.Bool // a timer will set flushDue

	journaled int // ReadOnly: records in a journal entry not yet applied

	recount map[string]uint64 // Open: bucket sizes counted by the check
	dropped atomic.Int64      // when view last released the map's pages (dropPagesEvery)

	amu      sync.Mutex
	caughtUp sync.Cond // on amu: broadcast when settled grows
	wrote    uint64    // generation of the last journal entry written
	settled  uint64    // generation of the last entry whose apply was tried
	burnGen  uint64    // a generation a failed journal write may have left; see commitJournaled
	// held are the delivered IDs of the journal's entry while bbolt lacks
	// them (nil when none); heldGen is the entry's generation while it is
	// held. The leader only appends to held until the entry is applied, so
	// a reader may keep the slice it read.
	held    []uint64
	heldGen uint64

	hmu      sync.Mutex // guards health and pendingN
	health   Health
	pendingN uint64        // pending count as of the last successful commit
	changed  chan struct{} // signalled when Health.Full or Health.WriteFailed flips
}

// Open opens (creating if needed) the queue file at path, checks it for
// consistency (check.go: in memory that does not grow with the file) and
// starts the committer. A damaged file yields an error
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
		now = clock.Or(opts.Clock).Now
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
		// A copy left by a compaction that did not finish (ours, holding
		// the lock now, is not running).
		_ = os.Remove(path + ".compact-tmp")
	}
	q = &Queue{db: db, path: path, opts: opts, now: now, clock: clock.Or(opts.Clock),
		wake: make(chan struct{}, 1), kick: make(chan struct{}, 1), done: make(chan struct{}),
		changed: make(chan struct{}, 1)}
	q.idle.L = &q.omu
	q.caughtUp.L = &q.amu
	if err := q.checkOpen(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open queue %s: %w", path, err)
	}
	if !opts.ReadOnly {
		if err := protect(func() error {
			return db.Update(func(tx *bolt.Tx) error { return initBuckets(tx, q.recount) })
		}); err != nil {
			db.Close()
			if !errors.Is(err, ErrCorrupt) {
				err = fmt.Errorf("%w: %v", ErrWrite, err)
			}
			return nil, fmt.Errorf("open queue %s: %w", path, err)
		}
	}
	if err := q.view(func(tx *bolt.Tx) error {
		q.pendingN = counter(tx, metaPendingN)
		dropPages(tx) // what the check and initBuckets read
		return nil
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("open queue %s: %w", path, err)
	}
	q.recount = nil
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
			q.held = e.Del // delivered: left out of the pending records and counted as delivered
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
		q.held = e.Del // left out of the uploader's reads until applied
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

// protect runs fn, turning a bbolt panic (a damaged page) into ErrCorrupt.
func protect(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
	}()
	return fn()
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
