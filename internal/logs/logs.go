// Package logs builds the agent's log/slog logger for a fleet: text or JSON
// lines; under systemd (stderr is the journal's stream) each line starts
// with its sd-daemon priority (<3> error, <4> warning, <6> info, <7> debug)
// so that `journalctl -p err` finds the errors; and, for a Windows service,
// warnings and errors copied to the Event Log. It does not choose where the
// lines go (a file, stderr) nor redact: components keep secrets out.
package logs

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// EventSink is where warnings and errors are copied (kardianos/service's
// Windows Event Log logger has these methods).
type EventSink interface {
	Warning(v ...any) error
	Error(v ...any) error
}

// Options shape a logger; the zero value is text lines at info level.
type Options struct {
	Level  slog.Leveler
	Format string // "text" (default) or "json"
	// Journal prefixes each line with its journald priority (sd-daemon).
	Journal bool
	// Events, when set, also receives every warning and error.
	Events EventSink
	// ReplaceAttr is passed to the handlers (the demo drops the time).
	ReplaceAttr func(groups []string, a slog.Attr) slog.Attr
}

// Journal priorities of the sd-daemon line prefix, by level band.
const (
	prioError = "<3>"
	prioWarn  = "<4>"
	prioInfo  = "<6>"
	prioDebug = "<7>"
)

// New returns the logger writing to w.
func New(w io.Writer, o Options) *slog.Logger {
	if o.Level == nil {
		o.Level = slog.LevelInfo
	}
	mk := func(w io.Writer) slog.Handler {
		ho := &slog.HandlerOptions{Level: o.Level, ReplaceAttr: o.ReplaceAttr}
		if o.Format == "json" {
			return slog.NewJSONHandler(w, ho)
		}
		return slog.NewTextHandler(w, ho)
	}
	var h slog.Handler
	if o.Journal {
		// One handler a priority, each writing its prefix before the line:
		// a line is one Write, so the prefix and the line are one write.
		h = split{mk(prefixed{w, prioDebug}), mk(prefixed{w, prioInfo}), mk(prefixed{w, prioWarn}), mk(prefixed{w, prioError})}
	} else {
		h = mk(w)
	}
	if o.Events != nil {
		ev := func(send func(v ...any) error) slog.Handler {
			return slog.NewTextHandler(&eventWriter{send: send}, &slog.HandlerOptions{Level: slog.LevelWarn,
				ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
					if len(groups) == 0 && a.Key == slog.TimeKey {
						return slog.Attr{} // the Event Log stamps its entries
					}
					if o.ReplaceAttr != nil {
						return o.ReplaceAttr(groups, a)
					}
					return a
				}})
		}
		h = multi{h, split{nil, nil, ev(o.Events.Warning), ev(o.Events.Error)}}
	}
	return slog.New(h)
}

// prefixed writes each line with a prefix, in one Write.
type prefixed struct {
	w      io.Writer
	prefix string
}

func (p prefixed) Write(b []byte) (int, error) {
	buf := make([]byte, 0, len(p.prefix)+len(b))
	buf = append(append(buf, p.prefix...), b...)
	if _, err := p.w.Write(buf); err != nil {
		return 0, err
	}
	return len(b), nil
}

// eventWriter hands each line to an Event Log method.
type eventWriter struct {
	mu   sync.Mutex
	send func(v ...any) error
}

func (e *eventWriter) Write(b []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.send(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// split sends a record to the handler of its level band: debug, info,
// warn, error; a nil handler drops the band.
type split [4]slog.Handler

func band(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3
	case l >= slog.LevelWarn:
		return 2
	case l >= slog.LevelInfo:
		return 1
	}
	return 0
}

func (s split) Enabled(ctx context.Context, l slog.Level) bool {
	h := s[band(l)]
	return h != nil && h.Enabled(ctx, l)
}

func (s split) Handle(ctx context.Context, r slog.Record) error {
	if h := s[band(r.Level)]; h != nil {
		return h.Handle(ctx, r)
	}
	return nil
}

func (s split) WithAttrs(as []slog.Attr) slog.Handler {
	var out split
	for i, h := range s {
		if h != nil {
			out[i] = h.WithAttrs(as)
		}
	}
	return out
}

func (s split) WithGroup(name string) slog.Handler {
	var out split
	for i, h := range s {
		if h != nil {
			out[i] = h.WithGroup(name)
		}
	}
	return out
}

// multi sends each record to every handler that wants it.
type multi []slog.Handler

func (m multi) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range m {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (m multi) Handle(ctx context.Context, r slog.Record) error {
	var first error
	for _, h := range m {
		if h.Enabled(ctx, r.Level) {
			if err := h.Handle(ctx, r.Clone()); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

func (m multi) WithAttrs(as []slog.Attr) slog.Handler {
	out := make(multi, len(m))
	for i, h := range m {
		out[i] = h.WithAttrs(as)
	}
	return out
}

func (m multi) WithGroup(name string) slog.Handler {
	out := make(multi, len(m))
	for i, h := range m {
		out[i] = h.WithGroup(name)
	}
	return out
}
