package queue

import (
	"bytes"
	"fmt"
	"time"
)

// Record is one scan on its way to the platform: what the reader stamped, with
// the ID number already encrypted. It is the type that flows from the reader
// to the uploader; the plaintext ID number never reaches it.
type Record struct {
	// ID is the queue's sequence number, assigned by Enqueue; records are
	// uploaded in ID order.
	ID uint64 `json:"id"`

	Reader   string    `json:"reader"`
	TermName string    `json:"termName"`
	TermSn   string    `json:"termSn"`
	Xgh      string    `json:"xgh"`
	Name     string    `json:"name"`
	IDCard   string    `json:"idCard"` // ciphertext, as sent to the platform
	UserType string    `json:"userType"`
	ScanTime time.Time `json:"scanTime"` // when the frame completed

	EnqueuedAt  time.Time `json:"enqueuedAt"`
	Attempts    int       `json:"attempts,omitempty"`   // counted attempts (SPEC §2)
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
