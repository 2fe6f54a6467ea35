package reader

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"scanagent/internal/clock"
)

// TestRunLogsFramingMismatch: bytes arrive but no frame ends (the scanner
// sends no CR/LF with framing = "line"): the running agent's log says so
// with the fix, once, as monitor does.
func TestRunLogsFramingMismatch(t *testing.T) {
	defer func(d time.Duration) { stallAfter = d }(stallAfter)
	stallAfter = 50 * time.Millisecond
	sc := newScanner(t)
	h := startReader(t, testConfig(sc.path), Options{})
	h.waitConnected(t)
	sc.write(t, "2021001,张三,") // no CR or LF
	time.Sleep(2 * stallAfter)
	sc.write(t, "2021002,李四,") // the next read sees the stall
	deadline := time.Now().Add(waitTimeout)
	for !strings.Contains(h.logs.String(), "no scan ends") {
		if time.Now().After(deadline) {
			t.Fatalf("no log line about bytes that never end a frame:\n%s", h.logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if log := h.logs.String(); !strings.Contains(log, `fix="`) || !strings.Contains(log, `try framing = \"idle\"`) {
		t.Fatalf("the line does not carry the fix:\n%s", log)
	}
}

// TestRunLogsLineNoise: frames of garbage (what a wrong baud gives) are
// rejected and the log says "check baud".
func TestRunLogsLineNoise(t *testing.T) {
	sc := newScanner(t)
	h := startReader(t, testConfig(sc.path), Options{})
	h.waitConnected(t)
	sc.write(t, "\xf0\x8f\x1e\xe6\x98\x80\x00\x9f\xfe\x11\n")
	deadline := time.Now().Add(waitTimeout)
	for !strings.Contains(h.logs.String(), "frame rejected") {
		if time.Now().After(deadline) {
			t.Fatalf("no rejection logged:\n%s", h.logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if log := h.logs.String(); !strings.Contains(log, "line noise") || !strings.Contains(log, "check baud") {
		t.Fatalf("the log does not say check baud:\n%s", log)
	}
}

// TestRetryOnDrivenClock: a missing port is retried every RetryInterval
// of the reader's clock; on a driven clock an hour's interval takes no
// real time, and exactly one retry happens per interval.
func TestRetryOnDrivenClock(t *testing.T) {
	fake := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	h := startReader(t, testConfig(filepath.Join(t.TempDir(), "ttyNOPE")), Options{Clock: fake, RetryInterval: time.Hour})
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(waitTimeout)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out: %s\n%s", what, h.logs.String())
			}
			time.Sleep(time.Millisecond)
		}
	}
	for i := int64(1); i <= 3; i++ {
		waitUntil("the reader waiting to retry", func() bool { return h.opens.Load() == i && fake.Waiters() == 1 })
		fake.Advance(time.Hour)
	}
	waitUntil("the fourth try", func() bool { return h.opens.Load() == 4 })
}
