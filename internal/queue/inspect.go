package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
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
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
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
			out = append(out, decodeItem(state, k, v))
		}
		return nil
	})
	return out, err
}

// Ref addresses one entry a technician can name: a scan record (pending,
// dead or delivered) by its number ("12"), or a rejected frame by r and its
// number ("r12"). Rejected frames have their own sequence, so a bare number
// never means a rejected frame.
type Ref struct {
	Rejected bool
	N        uint64
}

// ParseRef reads "12" (a scan record) or "r12" (a rejected frame).
func ParseRef(s string) (Ref, error) {
	ref := Ref{}
	digits := s
	if rest, ok := strings.CutPrefix(s, "r"); ok {
		ref.Rejected, digits = true, rest
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || n == 0 || digits == "" || digits[0] == '+' {
		return Ref{}, fmt.Errorf("%q is not a record ID: a scan record is a positive number (12), a rejected frame r and its number (r12), as `queue list` shows them", s)
	}
	ref.N = n
	return ref, nil
}

func (r Ref) String() string {
	if r.Rejected {
		return "r" + strconv.FormatUint(r.N, 10)
	}
	return strconv.FormatUint(r.N, 10)
}

// Noun names what r addresses, for messages: "record 12", "rejected frame r12".
func (r Ref) Noun() string {
	if r.Rejected {
		return "rejected frame " + r.String()
	}
	return "record " + r.String()
}

// RejectedID is a rejected frame's number. It is shown and addressed as
// r<N> (JSON "r12"); JSON numbers, as older versions stored them, are read
// too.
type RejectedID uint64

func (id RejectedID) String() string { return Ref{Rejected: true, N: uint64(id)}.String() }

// MarshalText writes r<N>.
func (id RejectedID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalJSON reads "r12" or 12.
func (id *RejectedID) UnmarshalJSON(b []byte) error {
	var n uint64
	if json.Unmarshal(b, &n) == nil {
		*id = RejectedID(n)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	ref, err := ParseRef(s)
	if err != nil || !ref.Rejected {
		return fmt.Errorf("rejected frame ID %q: want r<N>", s)
	}
	*id = RejectedID(ref.N)
	return nil
}

// Ref is the item's address.
func (it Item) Ref() Ref {
	if it.Rejection != nil {
		return Ref{Rejected: true, N: uint64(it.Rejection.ID)}
	}
	if it.Record != nil {
		return Ref{N: it.Record.ID}
	}
	return Ref{}
}

// ErrState is returned for an action the record's state does not allow
// (retrying a pending record, or a rejected frame).
var ErrState = errors.New("not allowed in this state")

// Find returns the entry ref addresses: a rejected frame, or a scan record
// in pending, dead or delivered.
func (q *Queue) Find(ref Ref) (Item, error) {
	var it Item
	err := q.view(func(tx *bolt.Tx) error {
		st, v := locate(tx, ref)
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

// RetryOne moves one dead record back to pending (see Retry). Only dead
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
