package main

import (
	"bytes"
	"context"
	"testing"
	"time"

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
