package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"

	"scanagent/internal/admin"
	"scanagent/internal/queue"
	"scanagent/internal/upload"
)

// oldTokenFile is the bearer token of versions that served the queue API on
// admin_listen; the agent deletes it at start.
const oldTokenFile = "admin.token"

// listenAdmin opens the admin listeners. Neither is needed to take scans,
// so a failure is logged and the agent goes on: the socket is missing
// where the system has no AF_UNIX (wine), and admin_listen's port may be
// held by another process.
func (a *agent) listenAdmin() {
	dir := a.cfg.Agent.DataDir
	if err := os.Remove(filepath.Join(dir, oldTokenFile)); err == nil {
		a.log.Info("removed data_dir/" + oldTokenFile + ": the queue API is now on the socket data_dir/" + admin.SocketFile + " and needs no token")
	} else if !errors.Is(err, fs.ErrNotExist) {
		a.log.Warn("could not remove the old admin token file; delete it", "file", filepath.Join(dir, oldTokenFile), "err", err.Error())
	}
	sock := filepath.Join(dir, admin.SocketFile)
	s, err := admin.NewSocket(sock, admin.Options{Health: a.health, Queue: a.q, Salvage: a.salvage, Tap: a.tap, AlertTest: a.testAlert})
	if err != nil {
		a.log.Warn("admin socket unavailable: queue commands cannot reach the running agent (stop it to use them); scans are stored and uploaded as usual",
			"socket", sock, "err", err.Error())
	}
	a.socket = s
	addr := a.cfg.Agent.AdminListen
	if addr == "" {
		return
	}
	t, err := admin.New(addr, admin.Options{Health: a.health, Metrics: a.metrics})
	if err != nil {
		a.log.Error("cannot listen on admin_listen: /healthz and /metrics are OFF until the agent restarts; "+
			"is another process holding the port? scans are still stored and uploaded",
			"admin_listen", addr, "err", err.Error())
	}
	a.admin = t
}

// metrics is the /metrics snapshot: the components' counters and the
// queue's counts.
func (a *agent) metrics() admin.Metrics {
	var m admin.Metrics
	for i, r := range a.readers {
		s := r.Stats()
		m.Readers = append(m.Readers, admin.ReaderMetrics{Name: r.Name(), Read: s.Read, Rejected: s.Rejected,
			Debounced: s.Debounced, Stored: s.Stored, Failed: s.StoreFailed, Connected: r.Connected(), LastScan: r.LastScan(),
			TermName: a.cfg.Readers[i].TermName, TermSn: a.cfg.Readers[i].TermSn})
	}
	u := a.up.Stats()
	m.Uploads = map[string]int64{"delivered": u.Delivered, "dead": u.Dead, "platform_error": u.Counted,
		"transient": u.Transient, "bad_token": u.BadToken, "held": u.Held}
	m.TokenFetches = a.tokens.Fetches()
	m.TokenFailures = a.tokens.Failures()
	cm, _ := buildStamp()
	m.Build = admin.BuildInfo{Version: version, Commit: cm, GoVersion: runtime.Version()}
	m.StartTime, m.LastDelivery = a.started, a.delivered.last()
	m.AlertsActive = len(a.alerts.Active())
	sent, refused, failed := a.alerts.Counts()
	m.Alerts = map[string]int64{"sent": sent, "refused": refused, "failed": failed}
	st := a.plat.Status()
	m.PlatformStates = map[string]bool{}
	for _, s := range upload.States {
		m.PlatformStates[string(s)] = s == st.State
	}
	m.ClockSkew, m.ClockSkewKnown = st.Skew.Seconds(), st.SkewKnown
	m.ScanTimesCorrected, m.ScanTimesUncorrectable = u.Corrected, u.Uncorrectable
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

// deliveryClock is the queue as the uploader sees it, noting when a
// delivery was last recorded (for /metrics).
type deliveryClock struct {
	*queue.Queue
	at atomic.Int64 // Unix nanoseconds; 0 = none yet
}

func (d *deliveryClock) Deliver(ctx context.Context, ids ...uint64) error {
	err := d.Queue.Deliver(ctx, ids...)
	if err == nil && len(ids) > 0 {
		d.at.Store(time.Now().UnixNano())
	}
	return err
}

func (d *deliveryClock) last() time.Time {
	if n := d.at.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
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
