package main

import (
	"context"
	"log/slog"
	"net/http"
	"scanagent/internal/upload"
	"strings"
	"time"

	"scanagent/internal/alerts"
	"scanagent/internal/config"
	"scanagent/internal/redact"
)

// msgsendPath is the platform's message endpoint (operator alerts).
const msgsendPath = "/api/msgsend"

// newAlerts builds the alerts engine of cfg with no sources: messages go
// through the platform's msgsend with tokens, the agent's one token source.
func newAlerts(cfg *config.Config, store alerts.Store, tokens alerts.Tokens, client *http.Client, red *redact.Redactor,
	loc *time.Location, log *slog.Logger, now func() time.Time) *alerts.Engine {
	a := cfg.Alerts
	terms := make([]alerts.Terminal, 0, len(cfg.Readers))
	for _, r := range cfg.Readers {
		terms = append(terms, alerts.Terminal{Reader: r.Name, TermName: r.TermName, TermSn: r.TermSn})
	}
	// Checked often enough that a condition is seen within a quarter of
	// its threshold, and at least every 5 s.
	every := min(5*time.Second, a.ReaderDown.Duration/4, a.BacklogAge.Duration/4)
	return alerts.New(store, tokens, alerts.Options{
		To: a.To, MessageType: a.MessageType, MessageTo: a.MessageTo, AppID: cfg.Platform.AppID,
		URL: strings.TrimRight(cfg.Platform.BaseURL, "/") + msgsendPath, Resend: a.Resend.Duration,
		Interval: max(every, 50*time.Millisecond), RetryInitial: cfg.Upload.RetryInitial.Duration, RetryMax: cfg.Upload.RetryMax.Duration,
		Terminals: terms, Location: loc, Client: client, Logger: log.With("component", "alerts"), Redactor: red, Now: now,
	})
}

// wireAlerts gives the engine a source for every condition the agent can
// tell. Adding a condition is one AddSource line here.
func (a *agent) wireAlerts() {
	e, cfg := a.alerts, a.cfg
	for i, r := range a.readers {
		e.AddSource(alerts.ReaderSource(cfg.Readers[i].Name, r.Down, cfg.Alerts.ReaderDown.Duration))
	}
	e.AddSource(alerts.BacklogSource(func() (*time.Time, error) {
		s, err := a.q.Stats()
		return s.OldestPending, err
	}, cfg.Alerts.BacklogAge.Duration))
	if cfg.Alerts.Dead {
		e.AddSource(alerts.DeadSource(func() (uint64, error) {
			s, err := a.q.Stats()
			return s.Dead, err
		}))
	}
	e.AddSource(alerts.CredentialsSource(a.tokens.CredentialsRefused))
	e.AddSource(alerts.HoldSource(func() (time.Time, bool, string) {
		st := a.plat.Status()
		return st.Since, st.State == upload.StateHeld, st.Reason
	}))
	e.AddSource(alerts.ClockSkewSource(a.plat.Skew, a.plat.MaxClockSkew()))
	e.AddSource(alerts.QueueFullSource(func() (uint64, error) {
		s, err := a.q.Stats()
		return s.Pending, err
	}, cfg.Queue.MaxPending))
	e.AddSource(alerts.DiskSource(func() (uint64, uint64, error) { return alerts.DiskFree(cfg.Agent.DataDir) }, func() string {
		if h := a.q.Health(); h.WriteFailed {
			return h.WriteError
		}
		return ""
	}))
}

// testAlert is POST /api/alerts/test on the admin socket and the offline
// `alerts test`: one test message to every person, now.
func (a *agent) testAlert(ctx context.Context) ([]alerts.TestResult, error) {
	return a.alerts.Test(ctx)
}
