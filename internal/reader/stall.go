package reader

import (
	"time"
	"unicode/utf8"
)

// stall follows bytes that arrive without a frame ending: the framing
// does not match what the scanner sends. Run logs it once per stall, with
// the fix, as Monitor shows it.
type stall struct {
	since  time.Time // first byte not yet in a frame; zero when none
	logged bool
}

// watchStall is called after each read with the frames it ended.
func (r *Reader) watchStall(p *countingPort, frames int) {
	if frames > 0 || p.n == 0 {
		p.n, r.stall.since, r.stall.logged = 0, time.Time{}, false
		return
	}
	if r.stall.since.IsZero() {
		r.stall.since = time.Now()
		return
	}
	if !r.stall.logged && time.Since(r.stall.since) >= stallAfter {
		r.stall.logged = true
		r.log.Warn("bytes arrive from the scanner but no scan ends: the framing does not match", "bytes", p.n,
			keyFix, stallNote(r.cfg, p.n))
	}
}

// looksLikeNoise reports whether a frame is what a wrong line speed makes:
// not UTF-8, or mostly bytes that are not printable text.
func looksLikeNoise(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	if !utf8.Valid(b) {
		return true
	}
	odd := 0
	for _, c := range string(b) {
		if c < 0x20 && c != '\t' && c != '\r' && c != '\n' || c == 0x7f || c == utf8.RuneError {
			odd++
		}
	}
	return odd*4 > len(b)
}
