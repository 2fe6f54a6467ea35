package reader

import (
	"fmt"
	"time"

	"scanagent/internal/redact"
)

// A frame is one message cut from the byte stream. When reason is not empty
// the framer itself refuses the frame (too long, unterminated) and data holds
// what it kept, never more than max_frame bytes; such a frame is cut short.
type frame struct {
	data   []byte
	reason string
}

// masked is the frame with possible ID numbers hidden, for a log or a store.
func (f frame) masked() []byte {
	if f.reason != "" {
		return redact.BytesCut(f.data)
	}
	return redact.Bytes(f.data)
}

// A framer cuts a byte stream that arrives in pieces into frames. It is used
// by one goroutine. Times are only compared with each other (monotonic clock).
type framer interface {
	// Feed adds bytes read at now and returns the frames they complete.
	Feed(b []byte, now time.Time) []frame
	// Deadline is when the partial frame ends by silence; zero when no
	// silence can end it.
	Deadline() time.Time
	// Expire returns the frames ended by silence at now.
	Expire(now time.Time) []frame
	// Reset drops any partial frame (the port was closed).
	Reset()
}

const (
	framingLine   = "line"
	framingIdle   = "idle"
	framingSTXETX = "stx-etx"

	stx = 0x02
	etx = 0x03
)

func newFramer(kind string, maxFrame int, idleGap time.Duration) (framer, error) {
	if maxFrame < 1 {
		return nil, fmt.Errorf("max_frame = %d: must be at least 1", maxFrame)
	}
	switch kind {
	case framingLine:
		return &lineFramer{max: maxFrame}, nil
	case framingSTXETX:
		return &stxFramer{max: maxFrame}, nil
	case framingIdle:
		if idleGap <= 0 {
			return nil, fmt.Errorf("idle_gap = %s: framing \"idle\" needs a positive gap, e.g. \"50ms\"", idleGap)
		}
		return &idleFramer{max: maxFrame, gap: idleGap}, nil
	default:
		return nil, fmt.Errorf("framing = %q: want \"line\", \"idle\" or \"stx-etx\"", kind)
	}
}

func tooLong(buf []byte, max int) frame {
	return frame{data: clone(buf), reason: fmt.Sprintf("frame longer than max_frame (%d bytes)", max)}
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// lineFramer ends a frame at CR or LF (so CRLF too); empty frames are ignored.
// A frame that grows past max is cut, rejected, and the rest up to the next
// terminator is dropped.
type lineFramer struct {
	max      int
	buf      []byte
	skipping bool // dropping the tail of an over-long frame
}

func (f *lineFramer) Feed(b []byte, _ time.Time) []frame {
	var out []frame
	for _, c := range b {
		switch {
		case c == '\r' || c == '\n':
			if !f.skipping && len(f.buf) > 0 {
				out = append(out, frame{data: clone(f.buf)})
			}
			f.buf, f.skipping = f.buf[:0], false
		case f.skipping:
		case len(f.buf) == f.max:
			out = append(out, tooLong(f.buf, f.max))
			f.buf, f.skipping = f.buf[:0], true
		default:
			f.buf = append(f.buf, c)
		}
	}
	return out
}

func (f *lineFramer) Deadline() time.Time      { return time.Time{} }
func (f *lineFramer) Expire(time.Time) []frame { return nil }
func (f *lineFramer) Reset()                   { f.buf, f.skipping = f.buf[:0], false }

// stxFramer takes the bytes between STX (0x02) and ETX (0x03); bytes outside
// are discarded. An STX inside a frame starts a new one and the unterminated
// partial is rejected. An over-long frame is cut, rejected, and dropped up to
// its ETX (or the next STX).
type stxFramer struct {
	max      int
	buf      []byte
	inFrame  bool
	skipping bool
}

func (f *stxFramer) Feed(b []byte, _ time.Time) []frame {
	var out []frame
	for _, c := range b {
		switch {
		case c == stx:
			if f.inFrame && !f.skipping && len(f.buf) > 0 {
				out = append(out, frame{data: clone(f.buf), reason: "frame not terminated by ETX"})
			}
			f.buf, f.inFrame, f.skipping = f.buf[:0], true, false
		case !f.inFrame:
		case c == etx:
			if !f.skipping && len(f.buf) > 0 {
				out = append(out, frame{data: clone(f.buf)})
			}
			f.buf, f.inFrame, f.skipping = f.buf[:0], false, false
		case f.skipping:
		case len(f.buf) == f.max:
			out = append(out, tooLong(f.buf, f.max))
			f.buf, f.skipping = f.buf[:0], true
		default:
			f.buf = append(f.buf, c)
		}
	}
	return out
}

func (f *stxFramer) Deadline() time.Time      { return time.Time{} }
func (f *stxFramer) Expire(time.Time) []frame { return nil }
func (f *stxFramer) Reset()                   { f.buf, f.inFrame, f.skipping = f.buf[:0], false, false }

// idleFramer ends a frame after gap without a byte: for readers that send no
// terminator. An over-long frame is cut, rejected, and dropped until the
// line falls silent.
type idleFramer struct {
	max      int
	gap      time.Duration
	buf      []byte
	skipping bool
	last     time.Time // when the last byte arrived
}

func (f *idleFramer) Feed(b []byte, now time.Time) []frame {
	if len(b) == 0 {
		return nil
	}
	out := f.Expire(now)
	for _, c := range b {
		switch {
		case f.skipping:
		case len(f.buf) == f.max:
			out = append(out, tooLong(f.buf, f.max))
			f.buf, f.skipping = f.buf[:0], true
		default:
			f.buf = append(f.buf, c)
		}
	}
	f.last = now
	return out
}

func (f *idleFramer) pending() bool { return len(f.buf) > 0 || f.skipping }

func (f *idleFramer) Deadline() time.Time {
	if !f.pending() {
		return time.Time{}
	}
	return f.last.Add(f.gap)
}

func (f *idleFramer) Expire(now time.Time) []frame {
	if !f.pending() || now.Before(f.last.Add(f.gap)) {
		return nil
	}
	var out []frame
	if !f.skipping {
		out = append(out, frame{data: clone(f.buf)})
	}
	f.buf, f.skipping = f.buf[:0], false
	return out
}

func (f *idleFramer) Reset() { f.buf, f.skipping = f.buf[:0], false }
