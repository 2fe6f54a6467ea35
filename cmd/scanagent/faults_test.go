package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"scanagent/internal/clock"
	"scanagent/internal/devserver"
)

// TestPlatformFaultCycle keeps scanning while the platform is down, answers
// 503, serves a captive-portal page, redirects, expires the token and hangs
// past the timeout: every scan arrives exactly once, none dead, and the
// token is fetched a handful of times, not once per request.
func TestPlatformFaultCycle(t *testing.T) {
	if testing.Short() {
		t.Skip("about 5 s")
	}
	var out bytes.Buffer
	o := demoOptions{
		Scans: 40, Interval: 80 * time.Millisecond, OutageAt: 3, Outage: 3 * time.Second, Out: &out,
		RetryMax: 150 * time.Millisecond,
		Faults: []devserver.Mode{devserver.ModeDown, devserver.Mode503, devserver.ModeHTML,
			devserver.ModeRedirect, devserver.ModeExpireToken, devserver.ModeSlow},
	}
	tl, err := runDemo(context.Background(), o)
	if err != nil {
		t.Fatalf("runDemo: %v\n%s", err, out.String())
	}
	if !tl.ok(o.Scans) {
		t.Fatalf("tally %+v; want every scan exactly once, none dead\n%s", tl, out.String())
	}
	if tl.TokenFetches < 2 || tl.TokenFetches > 4 {
		t.Fatalf("token fetches = %d; want 2 to 4 (the first, and one after expire-token)\n%s", tl.TokenFetches, out.String())
	}
}

// TestClockJumps moves the agent's wall clock back by hours and forward by
// weeks while scans arrive (an NTP correction on a terminal with no RTC):
// nothing is lost or duplicated, and the jump past the token's expiry makes
// the agent fetch a new one rather than fail.
func TestClockJumps(t *testing.T) {
	clk := clock.NewShifted(nil, 0)
	jump := clk.Jump
	var out bytes.Buffer
	o := demoOptions{Scans: 30, Interval: 20 * time.Millisecond, Out: &out, Clock: clk}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, d := range []time.Duration{-5 * time.Hour, 3 * time.Hour, 15 * 24 * time.Hour, -2 * time.Hour} {
			time.Sleep(120 * time.Millisecond)
			jump(d)
		}
	}()
	tl, err := runDemo(context.Background(), o)
	<-done
	if err != nil {
		t.Fatalf("runDemo: %v\n%s", err, out.String())
	}
	if !tl.ok(o.Scans) {
		t.Fatalf("tally %+v; want every scan exactly once\n%s", tl, out.String())
	}
	if tl.TokenFetches < 2 {
		t.Fatalf("token fetches = %d; the jump past expiry should have refreshed it\n%s", tl.TokenFetches, out.String())
	}
}
