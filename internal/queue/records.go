package queue

// Records and states: what each operation does to the buckets, and the
// rules of the technician's commands, which the admin API and the offline
// CLI both call (so they cannot disagree): a scan record is addressed by
// its number and a rejected frame by r<N> (Ref); only dead records can be
// retried, and not an unreadable one; anything can be dropped; listings
// come in pages, masked unless asked otherwise.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// appendFill is the pending bucket's fill percent: its keys only ever grow
// (NextSequence), so full pages waste nothing and halve the file of a large
// backlog compared with bbolt's default of 0.5.
const appendFill = 1.0

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
		v, err := json.Marshal(storedRejection{ID: id, Reader: rec.Reader, Raw: rec.Raw, Reason: rec.Reason, Time: rec.Time})
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

// storedRejection is a Rejection as the rejected bucket keeps it: the ID as
// a JSON number, as every version wrote it (RejectedID reads both forms;
// everything shown says r<N>).
type storedRejection struct {
	ID     uint64    `json:"id"`
	Reader string    `json:"reader"`
	Raw    []byte    `json:"raw"`
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
}

// Pending returns up to limit pending records with an ID greater than after,
// oldest first. It reads with a cursor: the backlog is never loaded whole. A
// record whose bytes do not decode is skipped and moved to dead (reason
// Unreadable, its bytes kept in Raw), so one damaged record never stops the
// others.
func (q *Queue) Pending(after uint64, limit int) ([]Record, error) {
	var out []Record
	var bad []uint64
	err := q.viewPending(func(tx *bolt.Tx, delivered []uint64) error {
		c := tx.Bucket(bucketPending).Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			if slices.Contains(delivered, binary.BigEndian.Uint64(k)) {
				continue
			}
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
	err := q.viewPending(func(tx *bolt.Tx, delivered []uint64) error {
		if slices.Contains(delivered, id) {
			return ErrNotFound
		}
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

// Note records a failed send of a pending record: one more try, attempts
// (the platform errors counted against max_error_attempts), the redacted
// last error and the next attempt time, for `queue list` and `show`.
func (q *Queue) Note(ctx context.Context, id uint64, attempts int, lastErr string, next time.Time) error {
	return q.write(ctx, func(tx *bolt.Tx) error {
		r, err := getRecord(tx, bucketPending, id)
		if err != nil {
			return err
		}
		r.Attempts, r.LastError, r.NextAttempt = attempts, lastErr, next
		r.Tries++
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketPending).Put(u64(id), v)
	})
}

// Revive moves dead records back to pending under their own IDs, so they
// keep their place in the upload order: for records the uploader killed
// before it saw that the refusal was systemic (a configuration fault, not
// the records). why becomes their last error. A record no longer dead is
// skipped.
func (q *Queue) Revive(ctx context.Context, why string, ids ...uint64) (int, error) {
	moved := 0
	err := q.write(ctx, func(tx *bolt.Tx) error {
		moved = 0
		for _, id := range ids {
			r, err := getRecord(tx, bucketDead, id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if err := deleteRecord(tx, bucketDead, metaDeadN, id); err != nil {
				return err
			}
			r.Attempts, r.LastError = 0, why
			r.DeadReason, r.DeadAt, r.NextAttempt = "", time.Time{}, time.Time{}
			if err := putRecord(tx, bucketPending, metaPendingN, r); err != nil {
				return err
			}
			moved++
		}
		return nil
	})
	if moved > 0 && err == nil {
		q.signal()
	}
	return moved, err
}

// SetSentScanTime records the corrected scan time the uploader sends for a
// pending record (see Record.SentScanTime).
func (q *Queue) SetSentScanTime(ctx context.Context, id uint64, t time.Time) error {
	return q.write(ctx, func(tx *bolt.Tx) error {
		r, err := getRecord(tx, bucketPending, id)
		if err != nil {
			return err
		}
		r.SentScanTime = t
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
			res.Left = retryableDead(tx)
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

// retryableDead counts the dead records a retry could move: all but the
// unreadable ones.
func retryableDead(tx *bolt.Tx) int {
	n := 0
	c := tx.Bucket(bucketDead).Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		if r, err := getRecord(tx, bucketDead, binary.BigEndian.Uint64(k)); err == nil && r.Raw == nil {
			n++
		}
	}
	return n
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
		r.ID, r.Attempts, r.Tries, r.LastError = nid, 0, 0, "retried after: "+r.DeadReason
		r.DeadReason, r.DeadAt, r.NextAttempt = "", time.Time{}, time.Time{}
		if err := putRecord(tx, bucketPending, metaPendingN, r); err != nil {
			return moved, err
		}
		moved++
	}
	return moved, nil
}

// ErrState is returned for an action the record's state does not allow
// (retrying a pending record, or a rejected frame).
var ErrState = errors.New("not allowed in this state")

// RetryOne moves one dead record back to pending (see retryTx). Only dead
// records can be retried: a pending one is waiting already, and a rejected
// frame never became a record the platform could take.
func (q *Queue) RetryOne(ctx context.Context, ref Ref) (int, error) {
	if ref.Rejected {
		return 0, fmt.Errorf("%s: rejected frames are never uploaded, so they cannot be retried (the person rescans): %w", ref.Noun(), ErrState)
	}
	var moved int
	err := q.write(ctx, func(tx *bolt.Tx) error {
		st, v := locate(tx, ref)
		switch {
		case v == nil:
			return fmt.Errorf("%s: %w", ref.Noun(), ErrNotFound)
		case st != StateDead:
			return fmt.Errorf("%s is %s, not dead: only dead records can be retried: %w", ref.Noun(), st, ErrState)
		}
		var err error
		moved, err = q.retryTx(tx, []uint64{ref.N})
		return err
	})
	if moved > 0 {
		q.signal()
	}
	return moved, err
}

// DropOne deletes the entry ref addresses for good, in whatever state it
// is, and returns that state.
func (q *Queue) DropOne(ctx context.Context, ref Ref) (State, error) {
	var st State
	err := q.write(ctx, func(tx *bolt.Tx) error {
		var v []byte
		if st, v = locate(tx, ref); v == nil {
			return fmt.Errorf("%s: %w", ref.Noun(), ErrNotFound)
		}
		bucket, key := stateBucket(st)
		return deleteRecord(tx, bucket, key, ref.N)
	})
	return st, err
}

// Find returns the entry ref addresses: a rejected frame, or a scan record
// in pending, dead or delivered.
func (q *Queue) Find(ref Ref) (Item, error) {
	var it Item
	err := q.viewHeld(func(tx *bolt.Tx, delivered []uint64) error {
		st, v := locate(tx, ref)
		if st == StatePending && slices.Contains(delivered, ref.N) {
			v = nil
		}
		if v == nil {
			return fmt.Errorf("%s: %w", ref.Noun(), ErrNotFound)
		}
		it = decodeItem(st, u64(ref.N), v)
		return nil
	})
	return it, err
}

// locate finds ref's bucket and value (nil when it is in none).
func locate(tx *bolt.Tx, ref Ref) (State, []byte) {
	states := []State{StatePending, StateDead, StateDelivered}
	if ref.Rejected {
		states = []State{StateRejected}
	}
	for _, st := range states {
		bucket, _ := stateBucket(st)
		if b := tx.Bucket(bucket); b != nil {
			if v := b.Get(u64(ref.N)); v != nil {
				return st, v
			}
		}
	}
	return "", nil
}

// Stats are the counts of `queue stats` (docs/operate.md).
type Stats struct {
	Pending       uint64     `json:"pending"`
	Dead          uint64     `json:"dead"`
	Rejected      uint64     `json:"rejected"`
	Delivered     uint64     `json:"delivered"` // total ever
	OldestPending *time.Time `json:"oldest_pending"`
	// Journaled counts scans acknowledged before the agent stopped that are
	// still in the journal only (read-only opens; see journal.go). The
	// agent moves them into the pending bucket when it starts.
	Journaled int `json:"journaled,omitempty"`
}

// Stats reads the counters and the oldest pending record's scan time.
func (q *Queue) Stats() (Stats, error) {
	s := Stats{Journaled: q.journaled}
	err := q.viewHeld(func(tx *bolt.Tx, delivered []uint64) error {
		s.Pending = counter(tx, metaPendingN)
		s.Dead = counter(tx, metaDeadN)
		s.Rejected = counter(tx, metaRejectedN)
		s.Delivered = counter(tx, metaDeliveredTotal)
		b := tx.Bucket(bucketPending)
		if b == nil {
			return nil
		}
		gone := idSet(delivered)
		for id := range gone {
			if b.Get(u64(id)) == nil {
				delete(gone, id)
			}
		}
		s.Pending -= min(s.Pending, uint64(len(gone)))
		s.Delivered += uint64(len(gone))
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if gone[binary.BigEndian.Uint64(k)] {
				continue
			}
			var r Record
			if json.Unmarshal(v, &r) != nil {
				continue // moved aside by the next Pending
			}
			t := r.ScanTime.UTC()
			s.OldestPending = &t
			break
		}
		return nil
	})
	return s, err
}

// List returns up to limit entries of one state, oldest first, starting after
// the ID after (0 = from the start). limit <= 0 means all.
func (q *Queue) List(state State, after uint64, limit int) ([]Item, error) {
	bucket, _ := stateBucket(state)
	var out []Item
	err := q.viewHeld(func(tx *bolt.Tx, delivered []uint64) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		var gone map[uint64]bool
		if state == StatePending {
			gone = idSet(delivered)
		}
		c := b.Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Next() {
			if gone[binary.BigEndian.Uint64(k)] {
				continue
			}
			out = append(out, decodeItem(state, k, v))
		}
		return nil
	})
	return out, err
}

// idSet is the delivered IDs a reader was given (viewHeld) as a set: a
// listing may be long, so it looks each key up rather than scanning them.
func idSet(ids []uint64) map[uint64]bool {
	set := make(map[uint64]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	return set
}

// Listing pages: the default and the largest limit of one page.
const (
	DefaultPageLimit = 100
	MaxPageLimit     = 10000
)

// Page is one page of a listing (the admin API's GET /api/queue/records).
type Page struct {
	State State  `json:"state"`
	Items []Item `json:"items"`
	// NextAfter is the after= of the next page (a position in this
	// state's listing); 0 when this was the last page.
	NextAfter uint64 `json:"next_after,omitempty"`
}

// Page returns up to limit entries of state after the position after,
// oldest first, masked unless withIDCard. limit must be from 1 to
// MaxPageLimit.
func (q *Queue) Page(state State, after uint64, limit int, withIDCard bool) (Page, error) {
	if limit < 1 || limit > MaxPageLimit {
		return Page{}, fmt.Errorf("limit: want a number from 1 to %d", MaxPageLimit)
	}
	items, err := q.List(state, after, limit)
	if err != nil {
		return Page{}, err
	}
	p := Page{State: state, Items: make([]Item, 0, len(items))}
	for _, it := range items {
		if !withIDCard {
			it = it.Masked()
		}
		p.Items = append(p.Items, it)
	}
	if len(items) == limit {
		p.NextAfter = items[len(items)-1].Ref().N
	}
	return p, nil
}

// decodeItem decodes a stored entry. Bytes that do not decode are shown as
// they are (Record.Raw, or Rejection.Raw), never an error: one damaged
// record must not hide the others.
func decodeItem(state State, k, v []byte) Item {
	it := Item{State: state}
	id := binary.BigEndian.Uint64(k)
	if state == StateRejected {
		it.Rejection = new(Rejection)
		if err := json.Unmarshal(v, it.Rejection); err != nil {
			it.Rejection = &Rejection{ID: RejectedID(id), Raw: bytes.Clone(v), Reason: fmt.Sprintf("%s (%v)", Unreadable, err)}
		}
		return it
	}
	it.Record = new(Record)
	if err := json.Unmarshal(v, it.Record); err != nil {
		it.Record = unreadableRecord(id, v, err)
	}
	return it
}

func stateBucket(s State) (bucket, countKey []byte) {
	switch s {
	case StateDead:
		return bucketDead, metaDeadN
	case StateRejected:
		return bucketRejected, metaRejectedN
	case StateDelivered:
		return bucketDelivered, metaDeliveredN
	}
	return bucketPending, metaPendingN
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
