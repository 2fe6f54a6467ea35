package queue

// Operator alerts kept durably next to the scans: the state of each alert
// condition and an outbox of messages not yet sent, so that an episode during
// a platform outage (or across a restart) is reported afterwards with its
// real times. The contents are opaque to the queue (package alerts encodes
// them). The bucket is created by the first write, so a file without it
// (an older version's) reads as no alerts.

import (
	"context"
	"encoding/binary"

	bolt "go.etcd.io/bbolt"
)

// Bucket names of the alerts: "alert_state" (condition key → state) and
// "alert_outbox" (sequence → message), top-level like every bucket of the
// queue (the check at open vouches only for a file without nested
// buckets). Part of the file format.
var (
	alertsState  = []byte("alert_state")
	alertsOutbox = []byte("alert_outbox")
)

// AlertMessage is one message waiting in the outbox.
type AlertMessage struct {
	Seq  uint64
	Data []byte
}

// AlertUpdate is one atomic change of the alerts: states put and deleted,
// messages appended to the outbox.
type AlertUpdate struct {
	Put    map[string][]byte
	Delete []string
	Send   [][]byte
}

func alertBucket(tx *bolt.Tx, name []byte) *bolt.Bucket { return tx.Bucket(name) }

// AlertStates returns every stored condition state by key.
func (q *Queue) AlertStates() (map[string][]byte, error) {
	out := map[string][]byte{}
	err := q.view(func(tx *bolt.Tx) error {
		b := alertBucket(tx, alertsState)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			out[string(k)] = append([]byte(nil), v...)
			return nil
		})
	})
	return out, err
}

// AlertOutbox returns up to limit messages not yet sent, oldest first.
func (q *Queue) AlertOutbox(limit int) ([]AlertMessage, error) {
	var out []AlertMessage
	err := q.view(func(tx *bolt.Tx) error {
		b := alertBucket(tx, alertsOutbox)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil && len(out) < limit; k, v = c.Next() {
			if len(k) != 8 {
				continue
			}
			out = append(out, AlertMessage{Seq: binary.BigEndian.Uint64(k), Data: append([]byte(nil), v...)})
		}
		return nil
	})
	return out, err
}

// UpdateAlerts applies u in one durable transaction.
func (q *Queue) UpdateAlerts(ctx context.Context, u AlertUpdate) error {
	if len(u.Put) == 0 && len(u.Delete) == 0 && len(u.Send) == 0 {
		return nil
	}
	return q.write(ctx, func(tx *bolt.Tx) error {
		state, err := tx.CreateBucketIfNotExists(alertsState)
		if err != nil {
			return err
		}
		outbox, err := tx.CreateBucketIfNotExists(alertsOutbox)
		if err != nil {
			return err
		}
		for _, k := range u.Delete {
			if err := state.Delete([]byte(k)); err != nil {
				return err
			}
		}
		for k, v := range u.Put {
			if err := state.Put([]byte(k), v); err != nil {
				return err
			}
		}
		for _, m := range u.Send {
			seq, err := outbox.NextSequence()
			if err != nil {
				return err
			}
			if err := outbox.Put(u64(seq), m); err != nil {
				return err
			}
		}
		return nil
	})
}

// AlertSent removes a message from the outbox (sent, or given up on).
func (q *Queue) AlertSent(ctx context.Context, seq uint64) error {
	return q.write(ctx, func(tx *bolt.Tx) error {
		b := alertBucket(tx, alertsOutbox)
		if b == nil {
			return nil
		}
		return b.Delete(u64(seq))
	})
}
