package upload

import (
	"context"
	"sync"
	"time"

	"scanagent/internal/clock"
)

// gate is the backoff shared by all workers. While the platform is healthy
// everyone passes. After a failure nobody passes until the backoff has
// elapsed, and then only one worker (the probe) goes; the others wait for
// its answer, so a failing platform sees one request per backoff period, not
// a herd of `concurrency`.
type gate struct {
	initial, max time.Duration
	probeMax     time.Duration // how long the others wait for a probe's answer
	now          func() time.Time
	rand         func() float64
	clock        clock.Clock

	mu       sync.Mutex
	failures int
	until    time.Time
	probing  bool
	probeEnd time.Time     // while probing: when another worker may probe instead
	holding  bool          // a systemic hold: one probe every max
	changed  chan struct{} // closed and replaced at each state change
}

func newGate(initial, maxWait time.Duration, now func() time.Time, rnd func() float64, c clock.Clock) *gate {
	return &gate{initial: initial, max: maxWait, probeMax: maxWait, now: now, rand: rnd, clock: clock.Or(c), changed: make(chan struct{})}
}

func (g *gate) isFailing() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.failures > 0
}

func (g *gate) nextTry() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.until
}

// acquire waits until this worker may send. probe is true when it goes as
// the single probe of a failing platform. While a probe is out the others
// wait for its answer, at most probeMax: a probe whose answer never
// reached the gate does not stop the uploads.
func (g *gate) acquire(ctx context.Context) (probe bool, err error) {
	for {
		g.mu.Lock()
		if g.failures == 0 {
			g.mu.Unlock()
			return false, nil
		}
		changed := g.changed
		end := g.until
		if g.probing {
			end = g.probeEnd
		}
		wait := end.Sub(g.now())
		if wait <= 0 {
			g.probing, g.probeEnd = true, g.now().Add(g.probeMax)
			g.mu.Unlock()
			return true, nil
		}
		g.mu.Unlock()
		if err := waitChange(ctx, g.clock, changed, wait); err != nil {
			return false, err
		}
	}
}

// hold closes the gate for a systemic refusal: one probe every max until
// success. A refusal of a request sent before (not a probe) while the gate
// holds already does not push the next probe back.
func (g *gate) hold(probe bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.holding && !probe {
		return
	}
	g.holding = true
	g.failures = max(g.failures, 1)
	g.until = g.now().Add(g.max)
	g.probing = false
	g.broadcastLocked()
}

func (g *gate) broadcastLocked() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// release gives the probe's turn back unused (its record went away), so
// another worker probes instead.
func (g *gate) release(probe bool) {
	if !probe {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.probing {
		g.probing = false
		g.broadcastLocked()
	}
}

// success opens the gate; it reports whether the gate was closed before.
func (g *gate) success() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	was := g.failures > 0
	if was || g.probing {
		g.failures, g.probing, g.until, g.holding = 0, false, time.Time{}, false
		g.broadcastLocked()
	}
	return was
}

// failure closes the gate for the next backoff period. A failure of a
// request sent before the gate closed (not a probe) does not lengthen the
// backoff. It reports whether the gate was open before.
func (g *gate) failure(probe bool, retryAfter time.Duration) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	was := g.failures == 0
	if !was && !probe {
		return false
	}
	g.failures++
	wait := max(g.backoffLocked(g.failures), retryAfter)
	if g.holding {
		wait = max(g.max, retryAfter)
	}
	g.until = g.now().Add(wait)
	g.probing = false
	g.broadcastLocked()
	return was
}

// backoff is the jittered wait before attempt n (n >= 1): uniformly between
// retry_initial and min(retry_max, retry_initial·2^(n-1)).
func (g *gate) backoff(n int) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.backoffLocked(n)
}

func (g *gate) backoffLocked(n int) time.Duration {
	ceil := g.initial
	for i := 1; i < n && ceil < g.max; i++ {
		ceil *= 2
	}
	ceil = min(ceil, g.max)
	return g.initial + time.Duration(g.rand()*float64(ceil-g.initial))
}

// waitChange waits for changed, for d on c (when d >= 0) or for ctx.
func waitChange(ctx context.Context, c clock.Clock, changed <-chan struct{}, d time.Duration) error {
	var timeout <-chan time.Time
	if d >= 0 {
		t := c.NewTimer(d)
		defer t.Stop()
		timeout = t.C()
	}
	select {
	case <-changed:
	case <-timeout:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}
