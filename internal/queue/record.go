package queue

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Record is one scan on its way to the platform: what the reader stamped, with
// the ID number already encrypted. It is the type that flows from the reader
// to the uploader; the plaintext ID number never reaches it.
type Record struct {
	// ID is the queue's sequence number, assigned by Enqueue; records are
	// uploaded in ID order.
	ID uint64 `json:"id"`

	Reader   string `json:"reader"`
	TermName string `json:"termName"`
	TermSn   string `json:"termSn"`
	Xgh      string `json:"xgh"`
	Name     string `json:"name"`
	IDCard   string `json:"idCard"` // ciphertext, as sent to the platform
	// KeyAppID is the app_id whose key encrypted IDCard; when app_id is
	// corrected later, the uploader re-encrypts with the new key.
	KeyAppID string    `json:"keyAppId,omitempty"`
	UserType string    `json:"userType"`
	ScanTime time.Time `json:"scanTime"` // when the frame completed, by the local clock
	// Boot and BootAt read the boot clock when the scan was stamped
	// (package clock): the uploader uses them to correct ScanTime when the
	// wall clock was wrong then and has jumped since.
	Boot   string        `json:"boot,omitempty"`
	BootAt time.Duration `json:"bootAt,omitempty"`
	// SentScanTime is the corrected scan time sent instead of ScanTime
	// (which is kept as stamped); zero when ScanTime was sent.
	SentScanTime time.Time `json:"sentScanTime,omitzero"`

	EnqueuedAt  time.Time `json:"enqueuedAt"`
	Attempts    int       `json:"attempts,omitempty"`   // platform errors counted against max_error_attempts
	Tries       int       `json:"tries,omitempty"`      // every send that did not deliver (Note counts them)
	LastError   string    `json:"lastError,omitempty"`  // redacted
	NextAttempt time.Time `json:"nextAttempt,omitzero"` // earliest next try, when backing off
	DeadReason  string    `json:"deadReason,omitempty"` // set in the dead bucket
	DeadAt      time.Time `json:"deadAt,omitzero"`      // set in the dead bucket
	// Raw is set only for a record whose stored bytes did not decode: the
	// bytes as found (JSON: base64), kept for export. Such a record is dead
	// and cannot be retried.
	Raw []byte `json:"raw,omitempty"`
}

// Unreadable is the dead reason of a record whose stored bytes did not
// decode.
const Unreadable = "record unreadable"

// unreadableRecord stands for the stored bytes v of record id that did not
// decode (err).
func unreadableRecord(id uint64, v []byte, err error) *Record {
	return &Record{ID: id, Raw: bytes.Clone(v), DeadReason: fmt.Sprintf("%s (%v)", Unreadable, err)}
}

// Rejection is a frame that did not become a record: kept with its raw bytes
// and the reason, never uploaded.
type Rejection struct {
	ID     RejectedID `json:"id"` // shown as r<N>`
	Reader string     `json:"reader"`
	Raw    []byte     `json:"raw"` // as read from the port (JSON: base64)
	Reason string     `json:"reason"`
	Time   time.Time  `json:"time"`
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

// State names a bucket a technician can look into.
type State string

// The states a record can be in, as the queue commands show them.
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

// Item is one entry of a listing: a record, or a rejection for the rejected
// state.
type Item struct {
	State     State      `json:"state"`
	Record    *Record    `json:"record,omitempty"`
	Rejection *Rejection `json:"rejection,omitempty"`
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
