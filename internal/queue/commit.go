package queue

// The commit engine. Every write goes through submit: it queues its op, and
// the writer that finds nobody committing becomes the leader and commits in
// its own goroutine (lead); see the comment above commitLoop.
//
// Locking rules. Four mutexes, two condition variables; no goroutine ever
// holds two of the mutexes at once, and none but dbmu's read lock is held
// during a bbolt transaction, a journal write or a sync:
//
//   - omu guards queued (ops handed in, not yet taken), leading (a
//     goroutine is the leader) and closed. idle, on omu, is broadcast when
//     leading turns false; Close waits on it to take the lead for good.
//   - Exactly one goroutine leads at a time: leading is set under omu by
//     the writer that found it false (submit, retryApply, Close), and
//     cleared under omu by stopLeading. The leader alone runs bbolt write
//     transactions, writes the journal and touches the fields the Queue
//     marks as the leader's: journal, unapplied, retrying, burnGen, the
//     hold's fields and the compaction's. It hands the lead to the
//     committer goroutine through kick, never drops it while work or an
//     unapplied journal entry waits (unless the entry is held, see
//     journal.go: a timer then takes the lead to apply it; or an apply
//     failed: retryApply then takes the lead again later).
//   - amu guards wrote (the last journal generation written), settled
//     (the last one whose apply to bbolt was tried) and the held IDs.
//     caughtUp, on amu, is broadcast when settled grows; view applies a
//     held entry and waits on it until settled reaches the wrote it saw,
//     so a reader sees every write that was confirmed. viewPending waits
//     only for an entry that is not held, and leaves the held IDs out.
//   - hmu guards health and pendingN (health.go); the changed channel is
//     signalled after hmu is released.
//   - dbmu guards the db field: read holds its read lock for the length of
//     a read transaction; the leader, which alone writes and so needs no
//     lock to use db, takes it to swap in a compacted file (compact.go).
//     The leader does that with no read lock of its own held, and a read
//     never waits for the leader while it holds dbmu.
//
// Channels: wake (a pending record was added; for the uploader), kick (the
// lead passes to the committer goroutine), done (closed when it ends).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

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

// maxBatch bounds the work taken into one commit.
const maxBatch = 256

// A held entry of deliveries is applied once it has maxHeld IDs (about
// 20 KB of journal entry) or is holdFor old (journal.go, "Held
// deliveries").
const (
	maxHeld = 2048
	holdFor = time.Second
)

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
// only when the previous one is applied, or held (and then taken in whole
// into the new one); a waiting entry is applied in the same transaction as
// the next batch (commit). The committer (own nil) also compacts the file
// when a commit made that due.
func (q *Queue) lead(own *op) {
	for {
		if own == nil && q.compactDue {
			// In the committer, so that no writer's own call waits for it.
			q.compactDue = false
			q.compactNow()
		}
		q.omu.Lock()
		n := min(len(q.queued), maxBatch)
		if n == 0 && q.quiet() {
			q.stopLeading()
			return
		}
		batch := slices.Clone(q.queued[:n])
		q.queued = slices.Delete(q.queued, 0, n)
		q.omu.Unlock()
		var err error
		if n == 0 || q.unapplied != nil && (!q.hold || q.flushDue.Load()) || !q.commitJournaled(batch) {
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
			if q.quiet() {
				q.stopLeading()
				return
			}
			q.omu.Unlock()
			q.kick <- struct{}{}
			return
		}
	}
}

// quiet reports whether the leader may stop: nothing queued, and the
// journal's entry applied or held. q.omu must be held.
func (q *Queue) quiet() bool {
	return len(q.queued) == 0 && (q.unapplied == nil || q.hold && !q.flushDue.Load()) && !q.compactDue
}

// stopLeading gives up the lead; q.omu must be held, and is released. A
// held entry gets a timer to apply it when its time is up.
func (q *Queue) stopLeading() {
	if q.unapplied != nil && q.hold && q.flushArmed.CompareAndSwap(false, true) {
		q.clock.AfterFunc(max(0, holdFor-q.clock.Now().Sub(q.heldSince)), q.flushHeld)
	}
	q.leading = false
	q.idle.Broadcast()
	q.omu.Unlock()
}

// flushHeld is the held entry's timer: it has the entry applied.
func (q *Queue) flushHeld() {
	q.flushArmed.Store(false)
	q.flushDue.Store(true)
	q.omu.Lock()
	if q.closed || q.leading {
		q.omu.Unlock() // the leader applies it at its next turn, or Close does
		return
	}
	q.leading = true
	q.omu.Unlock()
	q.lead(nil)
}

// commitJournaled stores batch with one journal write when every op in it
// has a journal form, and answers it. An entry that holds records is
// applied to bbolt by the next turn of lead; one of deliveries alone is
// held, and the next entry takes its IDs with its own (journal.go). It
// reports false, having done nothing, when batch must be a bbolt
// transaction instead.
func (q *Queue) commitJournaled(batch []*op) bool {
	if q.journal == nil || q.unapplied != nil && !q.hold {
		return false
	}
	for _, o := range batch {
		if o.recs == nil && o.ids == nil {
			return false
		}
	}
	var seq, pending uint64
	// The batch's delivered IDs not held already: 1 when pending in
	// bbolt, 2 once counted off pending, 0 when not pending.
	var fresh map[uint64]int8
	if err := protect(func() error {
		return q.db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketPending)
			seq, pending = b.Sequence(), counter(tx, metaPendingN)-uint64(len(q.heldIDs))
			for _, o := range batch {
				for _, id := range o.ids {
					if _, held := q.heldIDs[id]; held {
						continue
					}
					if fresh == nil {
						fresh = make(map[uint64]int8)
					}
					if b.Get(u64(id)) != nil {
						fresh[id] = 1
					} else {
						fresh[id] = 0
					}
				}
			}
			return nil
		})
	}); err != nil {
		return false // the transaction reports it
	}
	e := &entry{Gen: q.journal.gen + 1}
	if q.unapplied != nil {
		e.Del = q.unapplied.Del // appended to: readers keep only the part they read
	}
	heldN := len(e.Del)
	seq0 := seq
	for _, o := range batch {
		if o.ids != nil {
			// Only IDs pending in bbolt, or given by this batch: an ID
			// not given yet must not delete the record that gets it
			// while this entry is held.
			for _, id := range o.ids {
				if fresh[id] == 1 || fresh[id] == 0 && id > seq0 && id <= seq {
					fresh[id] = 2
					pending--
					e.Del = append(e.Del, id)
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
	if len(e.Enq) > 0 || len(e.Del) > heldN {
		if err := q.journal.write(e); errors.Is(err, errTooBig) {
			return false
		} else if err != nil {
			// The entry may be in the file all the same (a failed sync),
			// and must never be applied: the bbolt transaction that now
			// stores the batch records its generation as applied. The
			// journal is not used again until the next Open. A held
			// entry stays in its slot: its deliveries were acknowledged,
			// and bbolt may fail to take them too.
			q.burnGen = e.Gen
			q.journal.clearSlot(e.Gen)
			if q.unapplied == nil {
				q.journal.clear()
			}
			q.closeJournal()
			return false
		}
		now := q.clock.Now()
		if q.unapplied == nil {
			q.heldSince = now
			q.flushDue.Store(false)
		}
		q.unapplied = e
		for id, f := range fresh {
			if f != 2 {
				continue // not pending: neither journaled nor held
			}
			if q.heldIDs == nil {
				q.heldIDs = make(map[uint64]struct{})
			}
			q.heldIDs[id] = struct{}{}
		}
		q.hold = len(e.Enq) == 0 && len(e.Del) < maxHeld && now.Sub(q.heldSince) < holdFor
		q.amu.Lock()
		q.wrote = e.Gen
		if len(e.Del) > 0 {
			q.held = e.Del
		}
		if q.hold {
			q.heldGen = e.Gen
		}
		q.amu.Unlock()
		q.noteCommit(pending, nil)
	}
	for _, o := range batch {
		close(o.done)
	}
	return true
}

// commit runs batch in one bbolt transaction and answers it. The journal's
// entry, if one is waiting, is applied first in the same transaction, so
// work that comes in while an entry waits costs one commit, not two. If the
// commit fails the entry stays, and a retry is scheduled in case no other
// write comes to try again.
func (q *Queue) commit(batch []*op) error {
	e := q.unapplied
	var pending uint64
	var size int64
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
			pending, size = counter(tx, metaPendingN), tx.Size()
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
		q.hold = false // applied, or to be retried as soon as may be
		if err != nil {
			if !q.retrying {
				q.retrying = true
				time.AfterFunc(time.Second, q.retryApply)
			}
		} else {
			q.unapplied = nil
			q.heldIDs = nil
			q.flushDue.Store(false)
			if q.journal != nil {
				q.journal.clear()
			}
			if len(e.Enq) > 0 {
				q.signal()
			}
		}
		q.amu.Lock()
		q.settled = e.Gen
		if err == nil {
			q.held = nil
		}
		q.caughtUp.Broadcast()
		q.amu.Unlock()
	}
	for _, o := range batch {
		if err != nil {
			o.err = err
		}
		close(o.done)
	}
	if err == nil && q.unapplied == nil {
		q.compactDue = q.shouldCompact(size)
	}
	return err
}

// apply moves the journal's entry, if any, into bbolt, and records the
// generation of a journal write that failed (burnGen) if no commit has.
func (q *Queue) apply() error {
	if q.unapplied == nil && q.burnGen == 0 {
		return nil
	}
	return q.commit(nil) // which also records a failed write's generation
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

// view reads the queue as its writers left it: it has a held entry applied
// and waits for the journal's entry, if one was just written, to reach
// bbolt (one commit), so a record Enqueue or Deliver confirmed is always
// seen.
func (q *Queue) view(fn func(tx *bolt.Tx) error) error {
	return q.viewHeld(func(tx *bolt.Tx, _ []uint64) error { return fn(tx) })
}

// viewHeld is view for the readers of the pending bucket: fn also gets the
// IDs of a journal entry that could not be applied (a full disk, or a
// read-only open after a crash), which are delivered although bbolt still
// holds them.
func (q *Queue) viewHeld(fn func(tx *bolt.Tx, delivered []uint64) error) error {
	q.amu.Lock()
	wrote, held := q.wrote, q.held
	q.amu.Unlock()
	if held != nil {
		// Best effort: when the apply fails the entry stays (and its retry
		// is scheduled), and this reader sees bbolt as it is.
		_ = q.write(context.Background(), func(*bolt.Tx) error { return nil })
	}
	q.amu.Lock()
	for q.settled < wrote {
		q.caughtUp.Wait()
	}
	held = q.held
	q.amu.Unlock()
	return q.read(func(tx *bolt.Tx) error { return fn(tx, held) })
}

// viewPending is view for the uploader's reads of the pending bucket, which
// a long drain makes often: it leaves a held entry held, and gives fn the
// IDs it holds, which are delivered.
func (q *Queue) viewPending(fn func(tx *bolt.Tx, delivered []uint64) error) error {
	q.amu.Lock()
	for wrote := q.wrote; q.settled < wrote && q.heldGen != wrote; {
		q.caughtUp.Wait()
	}
	held := q.held
	q.amu.Unlock()
	return q.read(func(tx *bolt.Tx) error { return fn(tx, held) })
}

// read runs fn in a read transaction.
func (q *Queue) read(fn func(tx *bolt.Tx) error) error {
	q.dbmu.RLock()
	defer q.dbmu.RUnlock()
	return protect(func() error {
		return q.db.View(func(tx *bolt.Tx) error {
			err := fn(tx)
			q.releasePages(tx)
			return err
		})
	})
}

// dropPagesEvery is how often reads release the file's pages they touched:
// the uploader's cursor walks through the whole backlog, and each page it
// passes would otherwise stay resident (see dropPages).
const dropPagesEvery = time.Second

// releasePages drops the map's pages when dropPagesEvery has passed since
// the last time; tx is a read transaction.
func (q *Queue) releasePages(tx *bolt.Tx) {
	now := time.Now().UnixNano()
	last := q.dropped.Load()
	if now-last < int64(dropPagesEvery) || !q.dropped.CompareAndSwap(last, now) {
		return
	}
	dropPages(tx)
}
