package main

import (
	"context"
	"fmt"
	"path/filepath"

	"scanagent/internal/admin"
	"scanagent/internal/queue"
)

// metrics is the /metrics snapshot: the components' counters and the
// queue's counts.
func (a *agent) metrics() admin.Metrics {
	var m admin.Metrics
	for _, r := range a.readers {
		s := r.Stats()
		m.Readers = append(m.Readers, admin.ReaderMetrics{Name: r.Name(), Read: s.Read, Rejected: s.Rejected,
			Debounced: s.Debounced, Stored: s.Stored, Failed: s.StoreFailed, Connected: r.Connected()})
	}
	u := a.up.Stats()
	m.Uploads = map[string]int64{"delivered": u.Delivered, "dead": u.Dead, "platform_error": u.Counted,
		"transient": u.Transient, "bad_token": u.BadToken}
	m.TokenFetches = a.tokens.Fetches()
	if s, err := a.q.Stats(); err == nil {
		m.Pending, m.Dead, m.Rejected = s.Pending, s.Dead, s.Rejected
		if s.OldestPending != nil {
			m.OldestPendingAge = max(0, a.now().Sub(*s.OldestPending).Seconds())
		}
	}
	h := a.q.Health()
	m.QueueFull, m.QueueWriteFailed = h.Full, h.WriteFailed
	return m
}

// salvage is POST /api/queue/salvage: the running agent copies the readable
// records of a damaged queue file into its queue. Only files in data_dir
// (where quarantined files are) are accepted, so the API cannot be used to
// read arbitrary files.
func (a *agent) salvage(ctx context.Context, file string) (queue.Salvaged, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return queue.Salvaged{}, err
	}
	dir, err := filepath.Abs(a.cfg.Agent.DataDir)
	if err != nil {
		return queue.Salvaged{}, err
	}
	if filepath.Dir(abs) != dir {
		return queue.Salvaged{}, fmt.Errorf("the running agent salvages only files in data_dir %s: move %s there, or stop the agent and run the command again", dir, file)
	}
	res, err := queue.Salvage(ctx, abs, a.q)
	if err == nil {
		a.log.Warn("salvaged a damaged queue file", "file", abs, "pending", res.Pending, "dead", res.Dead, "unreadable", res.Unreadable)
	}
	return res, err
}

// watchQueue logs one line each time the queue fills up or drains, and each
// time writing to it starts or stops failing, until ctx ends.
func (a *agent) watchQueue(ctx context.Context) {
	last := a.q.Health()
	if last.Full {
		a.log.Error("queue full: max_pending scans are waiting; new scans are refused (ack_fail) until uploads drain it",
			"max_pending", a.cfg.Queue.MaxPending)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.q.HealthChanged():
		}
		h := a.q.Health()
		switch {
		case h.Full && !last.Full:
			a.log.Error("queue full: max_pending scans are waiting; new scans are refused (ack_fail) until uploads drain it",
				"max_pending", a.cfg.Queue.MaxPending)
		case !h.Full && last.Full:
			a.log.Info("queue no longer full: scans are stored again")
		}
		switch {
		case h.WriteFailed && !last.WriteFailed:
			a.log.Error("cannot write to the queue database: new scans are refused (ack_fail); check free disk space", "err", h.WriteError)
		case !h.WriteFailed && last.WriteFailed:
			a.log.Info("queue database writable again")
		}
		last = h
	}
}
