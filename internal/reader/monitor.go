package reader

// Monitor: the reader's pipeline without the store, for `scanagent monitor`.

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.bug.st/serial"

	"scanagent/internal/config"

	"scanagent/internal/redact"
)

// stallAfter is how long bytes may sit in the framer, with no frame ending,
// before Monitor points at the framing. A variable for tests.
var stallAfter = 2 * time.Second

// Fields are a decoded frame as it may be shown: IDCard is masked (redact.ID),
// never the plaintext. UserType is what the agent would send: the reader's
// user_type when the frame carries none, mapped by user_types.
type Fields struct {
	Xgh      string `json:"xgh"`
	Name     string `json:"name"`
	IDCard   string `json:"idCard"`
	UserType string `json:"userType"`
	Card     string `json:"card,omitempty"`
}

// shown is s as it may be shown: the ID number masked.
func (s scan) shown() Fields {
	return Fields{Xgh: s.Xgh, Name: s.Name, IDCard: redact.ID(s.IDCard), UserType: s.UserType, Card: s.Card}
}

// Event is one thing Monitor saw on the line: a frame, or a note about the
// line when Note is not empty.
type Event struct {
	Time time.Time `json:"time"`
	// Raw is the frame's content (without the terminator or STX/ETX) with
	// possible ID numbers masked (redact.Bytes).
	Raw []byte `json:"raw,omitempty"`
	// Fields are what the decoder found when Reason is empty.
	Fields Fields `json:"fields"`
	// Reason is why the agent would reject the frame (and write ack_fail):
	// the framer's, the decoder's, or the field and the rule it breaks.
	Reason string `json:"reason,omitempty"`
	// Repeat is set for the same xgh again within the dedupe window: the
	// agent would write ack_ok and not store it again.
	Repeat bool `json:"repeat,omitempty"`
	// Note is a hint about the line, e.g. bytes that never end a frame, or
	// (from a running agent) the port connecting or disconnecting.
	Note string `json:"note,omitempty"`
}

// MonitorOptions are Monitor's optional settings; the zero value means the
// defaults.
type MonitorOptions struct {
	// Logger receives the reader's own log lines (roster loads); nil
	// discards.
	Logger *slog.Logger
	// Now stamps events and drives the dedupe window; default time.Now.
	Now func() time.Time
	// DedupeWindow is [queue] dedupe_window, to mark repeats.
	DedupeWindow time.Duration
	// Open opens a serial port; default serial.Open.
	Open func(path string, mode *serial.Mode) (serial.Port, error)
	// Connected is called with the device path once the port is open.
	Connected func(path string)
}

// Monitor opens the reader's port as Run does (the same line settings and
// "usb:" resolution), cuts and decodes frames with the same framer and
// decoder, and calls show for each, until ctx ends (it then returns nil) or
// the port cannot be opened or fails. It stores nothing, writes nothing to
// the port (no ack bytes) and does not retry: it is a technician's tool.
// show is called from Monitor's goroutine.
func Monitor(ctx context.Context, cfg config.Reader, opts MonitorOptions, show func(Event)) error {
	r, err := build(cfg, Options{Logger: opts.Logger, Now: opts.Now, Open: opts.Open})
	if err != nil {
		return err
	}
	port, path, err := r.openPort()
	if err != nil {
		return err
	}
	defer port.Close()
	if opts.Connected != nil {
		opts.Connected(path)
	}
	counted := &countingPort{Port: port}
	var lastFrame time.Time // when a frame last ended, or a stall was noted
	handle := func(frames []frame) {
		now := r.now()
		for _, f := range frames {
			show(r.inspect(f, now, opts.DedupeWindow))
		}
		if len(frames) > 0 || counted.n == 0 {
			lastFrame, counted.n = time.Now(), 0
			return
		}
		if time.Since(lastFrame) >= stallAfter {
			show(Event{Time: now, Note: stallNote(cfg, counted.n)})
			lastFrame, counted.n = time.Now(), 0
		}
	}
	err = r.serve(ctx, counted, readTimeout, handle)
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("port %s: %w", path, err)
}

// inspect decodes one frame as handle would, without storing or acking.
func (r *Reader) inspect(f frame, at time.Time, window time.Duration) Event {
	ev := Event{Time: at, Raw: f.masked(), Reason: f.reason}
	if ev.Reason != "" {
		return ev
	}
	s, reason := r.decode(f.data)
	if reason != "" {
		ev.Reason = redact.IDNumbers(reason)
		return ev
	}
	ev.Fields = s.shown()
	if window > 0 {
		last, ok := r.recent[s.Xgh]
		ev.Repeat = ok && at.Sub(last) >= 0 && at.Sub(last) < window
		r.recent[s.Xgh] = at
	}
	return ev
}

func stallNote(cfg config.Reader, n int) string {
	var hint string
	switch cfg.Framing {
	case framingLine:
		hint = `framing = "line" waits for CR or LF; if the scanner sends none, try framing = "idle"`
	case framingSTXETX:
		hint = `framing = "stx-etx" waits for 0x02 ... 0x03; if the scanner sends lines, try framing = "line"`
	default:
		hint = "check baud, data_bits, parity and stop_bits"
	}
	return fmt.Sprintf("%d bytes received but no frame ended: %s", n, strings.TrimSpace(hint))
}

// countingPort counts the bytes read since the last reset; used by one
// goroutine.
type countingPort struct {
	serial.Port
	n int
}

func (p *countingPort) Read(b []byte) (int, error) {
	n, err := p.Port.Read(b)
	p.n += n
	return n, err
}
