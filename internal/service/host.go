package service

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	kservice "github.com/kardianos/service"
)

// DefaultStopTimeout bounds how long Stop waits for the agent: below
// systemd's TimeoutStopSec=30 and the Windows service manager's 20 s
// default.
const DefaultStopTimeout = 18 * time.Second

// HostOptions tunes Host; the zero value means the defaults.
type HostOptions struct {
	// StopTimeout bounds the wait for run to return after a stop request
	// (0 = DefaultStopTimeout).
	StopTimeout time.Duration
	// Events receives start, stop and failure messages (Windows: the event
	// log). nil = SystemEvents on Windows, none elsewhere (the journal
	// already has stderr).
	Events EventLogger
}

// EventLogger is the part of kardianos' Logger the host uses.
type EventLogger interface {
	Info(v ...any) error
	Warning(v ...any) error
	Error(v ...any) error
}

type eventsKey struct{}

// EventLog returns the event logger Host gave the agent's context (the
// Windows Event Log), or nil: the agent copies its warnings and errors
// there.
func EventLog(ctx context.Context) EventLogger {
	ev, _ := ctx.Value(eventsKey{}).(EventLogger)
	return ev
}

// Host runs run under the service manager until the manager stops the
// service (Windows) or ctx ends (a signal, on Linux), and returns run's
// error. It returns at once with run's error when run ends by itself — a
// configuration error at start, say — so that the manager sees a failure
// and restarts the service.
func Host(ctx context.Context, run func(context.Context) error, opts HostOptions) error {
	p := newProgram(run, opts.StopTimeout)
	cfg := &kservice.Config{Name: Name, DisplayName: displayName, Description: description,
		Option: kservice.KeyValue{
			// POSIX: wait for the signal context or for run to end, instead
			// of kardianos' own signal handler.
			"RunWait": func() {
				select {
				case <-ctx.Done():
				case <-p.exited:
				}
			},
		}}
	s, err := kservice.New(p, cfg)
	if err != nil {
		return fmt.Errorf("service manager: %w", err)
	}
	p.events = opts.Events
	if p.events == nil && runtime.GOOS == "windows" {
		if l, err := s.SystemLogger(nil); err == nil {
			p.events = l
		}
	}
	return s.Run()
}

// program is the kardianos Interface: Start launches run with a context and
// returns at once; Stop cancels and waits, at most stopTimeout.
type program struct {
	run         func(context.Context) error
	stopTimeout time.Duration
	events      EventLogger
	// selfStop asks the service manager to stop the service after run ended
	// by itself (Windows; see onExit).
	selfStop func(kservice.Service) error

	cancel context.CancelFunc
	exited chan struct{} // closed when run has returned

	mu       sync.Mutex
	err      error // run's result
	stopping bool  // Stop was called
	failed   bool  // run ended before Stop was called
}

func newProgram(run func(context.Context) error, stopTimeout time.Duration) *program {
	if stopTimeout <= 0 {
		stopTimeout = DefaultStopTimeout
	}
	return &program{run: run, stopTimeout: stopTimeout, exited: make(chan struct{}), selfStop: selfStop}
}

// Start implements kservice.Interface.
func (p *program) Start(s kservice.Service) error {
	ctx, cancel := context.WithCancel(context.Background())
	if p.events != nil {
		ctx = context.WithValue(ctx, eventsKey{}, p.events)
	}
	p.cancel = cancel
	p.event(false, "scanagent service starting")
	go func() {
		err := p.run(ctx)
		p.mu.Lock()
		failed := !p.stopping
		if failed && err == nil {
			err = errors.New("the agent stopped without being asked to")
		}
		p.err, p.failed = err, failed
		p.mu.Unlock()
		// The event is written before exited is closed: once it is, the
		// process may end.
		switch {
		case failed:
			p.event(true, "scanagent service failed:\n"+err.Error())
		case err != nil:
			p.event(true, "scanagent service stopped with an error:\n"+err.Error())
		}
		close(p.exited)
		if failed {
			p.onExit(s)
		}
	}()
	return nil
}

// onExit handles run ending without a stop request (the failure is already
// in the event log): the service must end with an error so that the manager
// restarts it. On POSIX, RunWait sees exited and kardianos calls Stop. The
// Windows host only ends on a control request, so the service asks the
// manager to stop itself; Stop then returns run's error, which becomes a
// non-zero exit code (a "non-crash failure" that the recovery actions
// cover).
func (p *program) onExit(s kservice.Service) {
	if p.selfStop != nil && s != nil {
		if serr := p.selfStop(s); serr != nil {
			p.event(true, "scanagent service could not stop itself: "+serr.Error())
		}
	}
}

// Stop implements kservice.Interface.
func (p *program) Stop(kservice.Service) error {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	if p.cancel != nil {
		p.cancel()
	}
	t := time.NewTimer(p.stopTimeout)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		// A requested stop that overruns is not a failure to restart from:
		// the queue is durable at every commit, and the process is about
		// to end.
		p.event(true, fmt.Sprintf("scanagent service did not stop within %s; ending it", p.stopTimeout))
		return nil
	}
	p.mu.Lock()
	err, failed := p.err, p.failed
	p.mu.Unlock()
	if failed {
		// run ended by itself: the error makes the exit a failure, which
		// systemd (Restart=always) and the Windows recovery actions restart.
		return err
	}
	if err == nil {
		p.event(false, "scanagent service stopped")
	}
	return nil
}

func (p *program) event(isErr bool, msg string) {
	if p.events == nil {
		return
	}
	if isErr {
		p.events.Error(msg)
	} else {
		p.events.Info(msg)
	}
}
