package queue

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// State names a bucket a technician can look into.
type State string

// The states of SPEC §3's queue commands.
const (
	StatePending   State = "pending"
	StateDead      State = "dead"
	StateRejected  State = "rejected"
	StateDelivered State = "delivered"
)

// ParseState accepts "pending", "dead", "rejected" or "delivered".
func ParseState(s string) (State, error) {
	switch st := State(s); st {
	case StatePending, StateDead, StateRejected, StateDelivered:
		return st, nil
	}
	return "", fmt.Errorf("unknown state %q: use pending, dead, rejected or delivered", s)
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

// Stats are the counts of `queue stats` (SPEC §3).
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
	err := q.view(func(tx *bolt.Tx) error {
		s.Pending = counter(tx, metaPendingN)
		s.Dead = counter(tx, metaDeadN)
		s.Rejected = counter(tx, metaRejectedN)
		s.Delivered = counter(tx, metaDeliveredTotal)
		b := tx.Bucket(bucketPending)
		if b == nil {
			return nil
		}
		if k, v := b.Cursor().First(); k != nil {
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("%w: record %d: %v", ErrCorrupt, binary.BigEndian.Uint64(k), err)
			}
			t := r.ScanTime.UTC()
			s.OldestPending = &t
		}
		return nil
	})
	return s, err
}

// Item is one entry of a listing: a record, or a rejection for the rejected
// state.
type Item struct {
	State     State      `json:"state"`
	Record    *Record    `json:"record,omitempty"`
	Rejection *Rejection `json:"rejection,omitempty"`
}

// List returns up to limit entries of one state, oldest first, starting after
// the ID after (0 = from the start). limit <= 0 means all.
func (q *Queue) List(state State, after uint64, limit int) ([]Item, error) {
	bucket, _ := stateBucket(state)
	var out []Item
	err := q.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Next() {
			it, err := decodeItem(state, k, v)
			if err != nil {
				return err
			}
			out = append(out, it)
		}
		return nil
	})
	return out, err
}

// Get finds one ID, looking in pending, dead, rejected and delivered in that
// order (rejected frames have their own ID sequence).
func (q *Queue) Get(id uint64) (Item, error) {
	var it Item
	err := q.view(func(tx *bolt.Tx) error {
		for _, st := range []State{StatePending, StateDead, StateRejected, StateDelivered} {
			bucket, _ := stateBucket(st)
			b := tx.Bucket(bucket)
			if b == nil {
				continue
			}
			if v := b.Get(u64(id)); v != nil {
				var err error
				it, err = decodeItem(st, u64(id), v)
				return err
			}
		}
		return fmt.Errorf("record %d: %w", id, ErrNotFound)
	})
	return it, err
}

func decodeItem(state State, k, v []byte) (Item, error) {
	it := Item{State: state}
	var err error
	if state == StateRejected {
		it.Rejection = new(Rejection)
		err = json.Unmarshal(v, it.Rejection)
	} else {
		it.Record = new(Record)
		err = json.Unmarshal(v, it.Record)
	}
	if err != nil {
		return it, fmt.Errorf("%w: record %d: %v", ErrCorrupt, binary.BigEndian.Uint64(k), err)
	}
	return it, nil
}

// MaskedIDCard replaces a record's idCard in everything shown to a person or
// another program. The ciphertext is as sensitive as the number: its key is
// the public app id.
const MaskedIDCard = "***"

// Masked returns a copy of it with the idCard ciphertext replaced by
// MaskedIDCard (left empty when the record has none). Every listing, `show`,
// the admin API and exports without --include-idcard go through it.
func (it Item) Masked() Item {
	if it.Record != nil {
		r := *it.Record
		if r.IDCard != "" {
			r.IDCard = MaskedIDCard
		}
		it.Record = &r
	}
	return it
}
