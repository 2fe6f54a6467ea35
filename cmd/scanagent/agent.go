package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"scanagent/internal/admin"
	"scanagent/internal/alerts"
	"scanagent/internal/clock"
	"scanagent/internal/config"
	"scanagent/internal/crypto"
	"scanagent/internal/logfile"
	"scanagent/internal/logs"
	"scanagent/internal/queue"
	"scanagent/internal/reader"
	"scanagent/internal/redact"
	"scanagent/internal/upload"
)

const queueFile = "queue.db"

// agent is the running system: queue, readers, uploader and admin server,
// wired from a validated configuration.
type agent struct {
	cfg     *config.Config
	log     *slog.Logger
	q       *queue.Queue
	tokens  *upload.TokenSource
	up      *upload.Uploader
	readers []*reader.Reader
	alerts  *alerts.Engine
	admin   *admin.Server // admin_listen (TCP): /healthz, /metrics; nil when off or not bound
	socket  *admin.Server // data_dir/admin.sock: the queue API and the tap; nil where AF_UNIX is missing
	tap     *reader.Tap   // the readers' events for monitor --live
	now     func() time.Time
	started time.Time
	// delivered notes when the platform last accepted a record.
	delivered *deliveryClock
	clock     clock.Clock
	plat      *upload.Platform
}

// newLogger builds the agent's logger: text lines to w at the configured
// level. Secrets are kept out by the components (see internal/redact).
func newLogger(w io.Writer, level string) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: levelOf(level)}))
}

// levelOf maps log_level (validated by config) to a slog level.
func levelOf(level string) slog.Level {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return slog.LevelInfo
	}
	return lv
}

// agentLogger is the running agent's logger: log_format, journald
// priorities when its lines go to the journal's stream, and a copy of
// warnings and errors in events (the Windows Event Log of a service).
func agentLogger(cfg *config.Config, w io.Writer, events logs.EventSink) *slog.Logger {
	f, _ := w.(*os.File)
	return logs.New(w, logs.Options{Level: levelOf(cfg.Agent.LogLevel), Format: cfg.Agent.LogFormat,
		Journal: logs.UnderJournal(f), Events: events})
}

// openLog returns where the agent logs: log_file when set (rotated at
// log_max_size MiB, log_max_files kept), else fallback; and reopen, which
// starts a new file after logrotate moved it (nil for fallback).
func openLog(cfg *config.Config, fallback io.Writer) (w io.Writer, closeLog func(), reopen func() error, err error) {
	if cfg.Agent.LogFile == "" {
		return fallback, func() {}, nil, nil
	}
	lf, err := logfile.Open(cfg.Agent.LogFile, int64(cfg.Agent.LogMaxSize)<<20, cfg.Agent.LogMaxFiles)
	if err != nil {
		return nil, nil, nil, err
	}
	return lf, func() { lf.Close() }, lf.Reopen, nil
}

// newAgent opens the queue and builds every component. clk is the clock
// (nil = the system clock).
func newAgent(cfg *config.Config, log *slog.Logger, clk clock.Clock) (*agent, error) {
	clk = clock.Or(clk)
	now := clk.Now
	secret, err := cfg.ClientSecret()
	if err != nil {
		return nil, err
	}
	red := redact.New(secret)
	ci, err := crypto.New(cfg.Platform.AppID, crypto.Options{Mode: cfg.Crypto.Mode, Encoding: cfg.Crypto.Encoding, IV: cfg.Crypto.IV})
	if err != nil {
		return nil, fmt.Errorf("[crypto]: %w", err)
	}
	loc, err := time.LoadLocation(cfg.Upload.Timezone)
	if err != nil {
		return nil, fmt.Errorf("[upload] timezone: %w", err)
	}
	if err := os.MkdirAll(cfg.Agent.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	dbPath := filepath.Join(cfg.Agent.DataDir, queueFile)
	q, moved, err := queue.OpenOrQuarantine(dbPath, queue.Options{
		MaxPending: cfg.Queue.MaxPending, KeepDelivered: cfg.Queue.KeepDelivered, Clock: clk,
		Compacted: func(c queue.Compaction, err error) {
			if err != nil {
				log.Warn("queue.db could not be shrunk after the backlog drained (is the disk full?); nothing is lost, "+
					"the agent goes on with it and tries again in 10 minutes, or stop the agent and run `scanagent queue compact`", "err", err.Error())
				return
			}
			log.Info("queue.db shrunk after the backlog drained", "before_bytes", c.Before, "after_bytes", c.After)
		},
	})
	if errors.Is(err, queue.ErrLocked) {
		return nil, fmt.Errorf("%w\nanother scanagent already runs with data_dir %s (two agents would fight over the scanners): "+
			"stop it first (scanagent service stop), or give this one its own data_dir and [[reader]] ports", err, cfg.Agent.DataDir)
	}
	if err != nil {
		return nil, err
	}
	if moved != "" {
		log.Error("the queue database was damaged: it was moved aside and a fresh, empty queue started; "+
			"scans in the old file were NOT uploaded: recover what is readable with `scanagent queue salvage "+moved+"`",
			"moved_to", moved)
	}
	a := &agent{cfg: cfg, log: log, q: q, now: now, clock: clk, started: time.Now(), delivered: &deliveryClock{Queue: q}}
	ok := false
	defer func() {
		if !ok {
			q.Close()
		}
	}()

	client, err := upload.NewHTTPClient(cfg.Platform.Timeout.Duration, cfg.Platform.CAFile, cfg.Upload.Concurrency)
	if err != nil {
		return nil, err
	}
	base := strings.TrimRight(cfg.Platform.BaseURL, "/")
	a.plat = upload.NewPlatform(upload.PlatformOptions{Clock: clk, Logger: log.With("component", "platform"),
		MaxClockSkew: cfg.Upload.MaxClockSkew.Duration, Proxy: upload.ProxyFor(client, base+cfg.Platform.ScanPath)})
	a.tokens = upload.NewTokenSource(client, base+cfg.Platform.TokenPath, cfg.Platform.ClientID, secret, q, upload.TokenOptions{
		RefreshBefore: cfg.Platform.TokenRefreshBefore.Duration, Logger: log.With("component", "token"), Redactor: red, Now: now,
		Platform: a.plat,
	})
	a.up, err = upload.New(a.delivered, a.tokens, client, upload.Options{
		ScanURL: base + cfg.Platform.ScanPath, AppID: cfg.Platform.AppID, Params: cfg.Platform.Params,
		Concurrency: cfg.Upload.Concurrency, RetryInitial: cfg.Upload.RetryInitial.Duration, RetryMax: cfg.Upload.RetryMax.Duration,
		MaxErrorAttempts: cfg.Upload.MaxErrorAttempts, DateFormat: cfg.Upload.DateFormat, Location: loc,
		HoldAfter: cfg.Upload.HoldAfter, MaxClockSkew: cfg.Upload.MaxClockSkew.Duration,
		Recrypt: func(keyAppID, idCard string) (string, error) {
			old, err := crypto.New(keyAppID, crypto.Options{Mode: cfg.Crypto.Mode, Encoding: cfg.Crypto.Encoding, IV: cfg.Crypto.IV})
			if err != nil {
				return "", err
			}
			plain, err := old.Decrypt(idCard)
			if err != nil {
				return "", err
			}
			return ci.Encrypt(plain)
		},
		Logger: log.With("component", "upload"), Redactor: red, Clock: clk, Platform: a.plat,
	})
	if err != nil {
		return nil, fmt.Errorf("[upload]: %w", err)
	}
	a.tap = reader.NewTap()
	for _, rc := range cfg.Readers {
		r, err := reader.New(rc, q, reader.Options{
			Logger: log, Clock: clk, Encrypt: ci.Encrypt, KeyAppID: cfg.Platform.AppID, DedupeWindow: cfg.Queue.DedupeWindow.Duration, Tap: a.tap,
		})
		if err != nil {
			return nil, fmt.Errorf("reader %s: %w", rc.Name, err)
		}
		a.readers = append(a.readers, r)
	}
	a.alerts = newAlerts(cfg, q, a.tokens, client, red, loc, log, now)
	a.wireAlerts()
	a.listenAdmin()
	ok = true
	return a, nil
}

// health is the /healthz summary.
func (a *agent) health() admin.Health {
	st := a.plat.Status()
	h := admin.Health{OK: true, Platform: string(st.State), Readers: map[string]bool{}}
	h.PlatformDetail = &admin.PlatformHealth{State: string(st.State), Since: st.Since, Reason: st.Reason, Fix: st.Fix}
	if st.SkewKnown {
		s := st.Skew.Seconds()
		h.PlatformDetail.ClockSkewSeconds = &s
	}
	if st.State != upload.StateReachable && st.State != upload.StateUnknown && st.State != upload.StateUnreachable {
		// Scans are still taken, but nothing reaches the platform until
		// someone acts: say so where a monitor looks.
		h.Problems = append(h.Problems, fmt.Sprintf("platform %s: %s; fix: %s", st.State, st.Reason, st.Fix))
	}
	for i, r := range a.readers {
		h.Readers[a.cfg.Readers[i].Name] = r.Connected()
	}
	s, err := a.q.Stats()
	if err != nil {
		h.OK = false
		h.Problems = append(h.Problems, "queue: "+err.Error())
	}
	h.Pending, h.Dead = s.Pending, s.Dead
	qh := a.q.Health()
	h.QueueFull, h.QueueWriteError = qh.Full, qh.WriteError
	if qh.Full {
		h.OK = false
		h.Problems = append(h.Problems, "queue full: max_pending scans are waiting; new scans are refused")
	}
	if qh.WriteFailed {
		h.OK = false
		h.Problems = append(h.Problems, "queue: the last write failed: "+qh.WriteError)
	}
	if n, why := a.up.Paused(); n > 0 {
		h.OK = false
		h.Problems = append(h.Problems, fmt.Sprintf("uploads paused: %d delivered record(s) could not be removed from the queue (%s); "+
			"free space in data_dir, uploads resume by themselves", n, why))
	}
	return h
}

// run runs every component until ctx ends, then stops the readers first (no
// new scans), the uploader (in-flight records stay pending), the admin
// server, and closes the queue.
func (a *agent) run(ctx context.Context) error {
	a.log.Info("scanagent started", "version", version, "readers", len(a.readers), "queue", a.q.Path(),
		"platform", a.cfg.Platform.BaseURL)
	var readers, others sync.WaitGroup
	for _, r := range a.readers {
		readers.Add(1)
		go func() {
			defer readers.Done()
			if err := r.Run(ctx); err != nil {
				a.log.Error("reader stopped", "err", err.Error())
			}
		}()
	}
	others.Add(1)
	go func() {
		defer others.Done()
		if err := a.up.Run(ctx); err != nil {
			a.log.Error("uploader stopped", "err", err.Error())
		}
	}()
	others.Add(1)
	go func() {
		defer others.Done()
		a.watchQueue(ctx)
	}()
	others.Add(1)
	go func() {
		defer others.Done()
		a.alerts.Run(ctx)
	}()
	var adminErr, socketErr error
	if a.admin != nil {
		others.Add(1)
		go func() {
			defer others.Done()
			adminErr = a.admin.Run(ctx)
		}()
	}
	if a.socket != nil {
		others.Add(1)
		go func() {
			defer others.Done()
			socketErr = a.socket.Run(ctx)
		}()
	}
	<-ctx.Done()
	readers.Wait()
	others.Wait()
	err := a.q.Close()
	a.log.Info("scanagent stopped")
	return errors.Join(err, adminErr, socketErr)
}
