package queue

import "time"

// Health is the queue's own view of whether it can take scans, for /healthz,
// the metrics and the agent's state-change log lines.
type Health struct {
	// Full is true while MaxPending records are waiting: new scans are
	// refused with ErrFull (nothing stored is ever dropped to make room).
	Full bool `json:"full"`
	// WriteFailed is true when the last commit failed (disk full, file size
	// limit, I/O error). It clears at the next commit that succeeds.
	WriteFailed bool `json:"write_failed"`
	// WriteError is that commit's error, "" when the last commit succeeded.
	WriteError string `json:"write_error,omitempty"`
	// WriteFailedAt is when that commit failed.
	WriteFailedAt time.Time `json:"write_failed_at,omitzero"`
}

// Health returns the queue's current health. It reads no file.
func (q *Queue) Health() Health {
	q.hmu.Lock()
	defer q.hmu.Unlock()
	return q.health
}

// HealthChanged is signalled (without blocking, coalesced) whenever
// Health().Full or Health().WriteFailed changes, so a caller can log one
// line per state change without polling.
func (q *Queue) HealthChanged() <-chan struct{} { return q.changed }

func (q *Queue) isFull(pending uint64) bool {
	return q.opts.MaxPending > 0 && pending >= uint64(q.opts.MaxPending)
}

// noteCommit records the outcome of one commit: the pending count it left
// (ignored when it failed) and its error.
func (q *Queue) noteCommit(pending uint64, err error) {
	q.hmu.Lock()
	old := q.health
	if err != nil {
		q.health.WriteFailed, q.health.WriteError, q.health.WriteFailedAt = true, err.Error(), q.now()
	} else {
		q.pendingN = pending
		q.health.WriteFailed, q.health.WriteError, q.health.WriteFailedAt = false, "", time.Time{}
	}
	q.health.Full = q.isFull(q.pendingN)
	flipped := old.Full != q.health.Full || old.WriteFailed != q.health.WriteFailed
	q.hmu.Unlock()
	if flipped {
		select {
		case q.changed <- struct{}{}:
		default:
		}
	}
}
