// Package alerts tells operators about conditions that need a person: a
// reader unplugged, an old backlog, dead records, refused credentials, a
// systemic hold, clock skew, a queue or disk nearly full. It sends through
// the platform's own POST /api/msgsend with the agent's one access token.
//
// Conditions come from Sources (functions the agent wires, one per kind of
// fact it knows). The Engine compares what they report with what it has
// stored and queues one message when a condition starts, one when it clears
// and a reminder every Resend while it lasts. State and the messages not yet
// sent live in the queue database (queue.UpdateAlerts), so an episode during
// a platform outage is sent when the platform returns, with its real times.
// Texts are rendered when the message is queued, in Chinese, naming the
// terminal (term_name, term_sn, reader), the condition, since when and the
// fix; every text goes through redact.IDNumbers. The Sender drains the
// outbox (send.go), its answers judged by Classify (classify.go).
//
// The package does not read ports, upload scans or fetch tokens itself.
package alerts

import (
	"time"
)

// Kind is a kind of condition; its name is the condition's key prefix.
type Kind string

// The conditions of the operator alerts.
const (
	ReaderDown  Kind = "reader_down"         // a reader's port closed for longer than reader_down
	Backlog     Kind = "backlog"             // the oldest pending scan is older than backlog_age
	Dead        Kind = "dead"                // records the platform refused for good
	Credentials Kind = "credentials_refused" // the token endpoint refuses client_id/client_secret
	Hold        Kind = "hold"                // uploads held on a systemic refusal
	ClockSkew   Kind = "clock_skew"          // the platform's clock differs from ours
	QueueFull   Kind = "queue_full"          // pending ≥ 90% of max_pending
	DiskFull    Kind = "disk_full"           // data_dir's disk nearly full, or the queue cannot write
)

// Condition is one fact a Source reports at a check.
type Condition struct {
	// Key identifies the condition across checks and restarts: the Kind,
	// and ":" and the reader's name for a reader's condition.
	Key  string
	Kind Kind
	// Reader is the [[reader]] name for a reader's condition, "" for one
	// of the whole station.
	Reader string
	// Active reports whether the condition holds now.
	Active bool
	// Since is when an active condition started, as well as it is known
	// (a reader: when its port closed); zero = the time of the check.
	Since time.Time
	// Detail says what is wrong in a few words (may carry figures); Fix
	// says what to do. Both are free text and are redacted before use.
	Detail, Fix string
}

// Source reports the conditions it knows at now. A condition it does not
// report keeps its state (a source that cannot tell does not clear one).
type Source func(now time.Time) []Condition

// Key builds a condition key.
func Key(k Kind, reader string) string {
	if reader == "" {
		return string(k)
	}
	return string(k) + ":" + reader
}

// Terminal is what names one reader in a message.
type Terminal struct {
	Reader, TermName, TermSn string
}
