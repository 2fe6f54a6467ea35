package upload

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"scanagent/internal/clock"
)

// State is what the agent knows of the platform, the same word in
// /healthz, /metrics, doctor and the log.
type State string

// The platform states, in order of precedence: when several hold, the
// first is shown.
const (
	StateCredentials State = "credentials refused" // the token endpoint refuses client_id / client_secret
	StateHeld        State = "held"                // uploading holds: a systemic refusal (wrong endpoint, a field refused for every record)
	StateUnreachable State = "unreachable"         // no answer, or not the platform's (network, DNS, proxy, TLS, portal)
	StateClockSkewed State = "clock skewed"        // the platform's Date differs from the local clock by more than max_clock_skew
	StateReachable   State = "reachable"
	StateUnknown     State = "unknown" // no contact yet
)

// States lists every state, for a metric with one series per state.
var States = []State{StateUnknown, StateReachable, StateUnreachable, StateCredentials, StateHeld, StateClockSkewed}

// Status is the platform's state with when it began, why, and what to do.
type Status struct {
	State  State     `json:"state"`
	Since  time.Time `json:"since"`
	Reason string    `json:"reason,omitempty"`
	Fix    string    `json:"fix,omitempty"`
	// Skew is the platform's clock minus the local clock, as last
	// measured from an answer's Date header; SkewKnown is false before.
	Skew      time.Duration `json:"-"`
	SkewKnown bool          `json:"-"`
}

// Platform is the one place that decides the platform's state. The token
// source and the uploader report what they see; everything else reads it:
//
//	st := p.Status()              // the state now, since when, why, the fix
//	st, changed := p.Watch()      // and a channel closed at the next change
//
// Watch suits a goroutine that reacts to changes (alerts): read, act, wait
// for changed, repeat; a change between two reads is never missed, though
// several may be seen as one. Each change is logged once, with fix=.
type Platform struct {
	clock   clock.Clock
	log     *slog.Logger
	maxSkew time.Duration
	proxy   string

	mu        sync.Mutex
	contacted bool
	down      *Fault // with Cause the reason
	creds     *Fault
	held      *Fault
	detail    string // the last error behind down, logged with the change
	skew      time.Duration
	skewKnown bool
	// The wall and boot clocks when skew was measured: once the wall
	// clock has moved against the boot clock by more than max_clock_skew
	// (a clock set or stepped by NTP), skew is no longer the clock's.
	skewWall   time.Time
	skewBootID string
	skewBoot   time.Duration
	cur        Status
	changed    chan struct{}
}

// PlatformOptions configure a Platform; zero values mean the defaults.
type PlatformOptions struct {
	Clock        clock.Clock   // nil = the system clock
	Logger       *slog.Logger  // nil = discard
	MaxClockSkew time.Duration // 0 = 2m
	// Proxy is the proxy the platform is reached through (ProxyFor), ""
	// when none: the fix of every network fault then names it.
	Proxy string
}

// NewPlatform returns a Platform in state unknown.
func NewPlatform(opts PlatformOptions) *Platform {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxClockSkew <= 0 {
		opts.MaxClockSkew = 2 * time.Minute
	}
	c := clock.Or(opts.Clock)
	return &Platform{clock: c, log: opts.Logger, maxSkew: opts.MaxClockSkew, proxy: opts.Proxy,
		cur: Status{State: StateUnknown, Since: c.Now()}, changed: make(chan struct{})}
}

// Status returns the current state.
func (p *Platform) Status() Status {
	st, _ := p.Watch()
	return st
}

// Watch returns the current state and a channel closed at its next change.
func (p *Platform) Watch() (Status, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.cur
	st.Skew, st.SkewKnown = p.skew, p.skewKnown
	return st, p.changed
}

// Skew returns the last measured difference platform − local clock. It
// is not known (to be measured again) once the local clock was set since
// the measure: moved against the boot clock by more than max_clock_skew.
func (p *Platform) Skew() (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.skewKnown {
		return p.skew, false
	}
	id, boot := p.clock.Boot()
	moved := p.clock.Now().Round(0).Sub(p.skewWall) - (boot - p.skewBoot)
	return p.skew, id == p.skewBootID && !p.skewed(moved)
}

// MaxClockSkew is the skew beyond which the clock is a fault.
func (p *Platform) MaxClockSkew() time.Duration { return p.maxSkew }

// skewed reports whether d is beyond max_clock_skew.
func (p *Platform) skewed(d time.Duration) bool { return d > p.maxSkew || d < -p.maxSkew }

// reached: the platform answered as the platform.
func (p *Platform) reached() {
	p.update(func() { p.contacted, p.down = true, nil })
}

// unreachable: no answer, or not the platform's. detail is the (redacted)
// error, for the log line.
func (p *Platform) unreachable(reason string, f Fault, detail string) {
	f.Cause = reason
	if p.proxy != "" && !strings.Contains(f.Fix, "NO_PROXY") {
		reason += " (through the proxy " + p.proxy + ")"
		f.Cause = reason
		f.Fix += "; the platform is reached through the proxy " + p.proxy + " (HTTPS_PROXY / HTTP_PROXY): if the proxy is at fault, fix that variable, or list the platform's host in NO_PROXY to reach it directly"
	}
	p.update(func() { p.down, p.detail = &f, detail })
}

// credentials: the token endpoint refused (or accepted again) the client
// credentials.
func (p *Platform) credentials(reason, fix string) {
	p.update(func() {
		p.contacted, p.down = true, nil
		if reason == "" {
			p.creds = nil
			return
		}
		p.creds = &Fault{reason, fix}
	})
}

// hold / unhold: uploading holds for a systemic refusal.
func (p *Platform) hold(reason, fix string) {
	p.update(func() { p.contacted, p.down, p.held = true, nil, &Fault{reason, fix} })
}

func (p *Platform) unhold() { p.update(func() { p.held = nil }) }

// isHeld reports whether uploading holds.
func (p *Platform) isHeld() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held != nil
}

// observe measures the clock skew from an answer's Date header against
// the middle of the request. Date has a resolution of one second: half a
// second is added to its reading.
func (p *Platform) observe(start, end time.Time, h http.Header) {
	date, err := http.ParseTime(h.Get("Date"))
	if err != nil {
		return
	}
	if wall, mono := end.Round(0).Sub(start.Round(0)), end.Sub(start); wall-mono > time.Second || mono-wall > time.Second {
		return // the wall clock jumped during the request: the reading means nothing
	}
	mid := start.Add(end.Sub(start) / 2)
	skew := date.Add(500 * time.Millisecond).Sub(mid).Round(time.Second)
	id, boot := p.clock.Boot()
	wall := p.clock.Now().Round(0)
	p.update(func() {
		p.skew, p.skewKnown = skew, true
		p.skewWall, p.skewBootID, p.skewBoot = wall, id, boot
	})
}

// update applies change and, if the state moved, logs it once and wakes
// the watchers.
func (p *Platform) update(change func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	change()
	next := p.computeLocked()
	if next.State == p.cur.State && (next.Reason == p.cur.Reason || next.State == StateClockSkewed) {
		p.cur.Reason = next.Reason // the skew's figure moves a little with each answer
		return
	}
	prev := p.cur
	next.Since = p.clock.Now()
	p.cur = next
	close(p.changed)
	p.changed = make(chan struct{})
	p.logChange(prev, next)
}

func (p *Platform) computeLocked() Status {
	switch {
	case p.creds != nil:
		return Status{State: StateCredentials, Reason: p.creds.Cause, Fix: p.creds.Fix}
	case p.held != nil:
		return Status{State: StateHeld, Reason: p.held.Cause, Fix: p.held.Fix}
	case p.down != nil:
		return Status{State: StateUnreachable, Reason: p.down.Cause, Fix: p.down.Fix}
	case p.skewKnown && p.skewed(p.skew):
		return Status{State: StateClockSkewed, Reason: SkewText(p.skew), Fix: FixClock}
	case p.contacted:
		return Status{State: StateReachable}
	}
	return Status{State: StateUnknown}
}

// SkewText says how the local clock differs from the platform's.
func SkewText(skew time.Duration) string {
	d := skew
	dir := "behind"
	if d < 0 {
		d, dir = -d, "ahead of"
	}
	return fmt.Sprintf("the local clock is %s %s the platform's", Human(d), dir)
}

// Human writes a long duration in days and hours, a short one as is.
func Human(d time.Duration) string {
	if d < 48*time.Hour {
		return d.Round(time.Second).String()
	}
	days := d / (24 * time.Hour)
	if days >= 730 {
		return fmt.Sprintf("%d days (about %.1f years)", days, float64(days)/365.25)
	}
	return fmt.Sprintf("%d days %dh", days, (d-days*24*time.Hour)/time.Hour)
}

func (p *Platform) logChange(prev, next Status) {
	switch next.State {
	case StateReachable:
		if prev.State == StateUnknown {
			p.log.Info("platform reachable", "state", next.State)
		} else {
			p.log.Info("platform reachable again; uploading the backlog", "state", next.State, "was", prev.State)
		}
	case StateUnreachable:
		p.log.Warn("platform unreachable; scans are kept in the queue and retried", "state", next.State, "reason", next.Reason, "err", p.detail, "fix", next.Fix)
	case StateCredentials:
		p.log.Error("configuration error: the platform refuses the credentials; scans are kept in the queue", "state", next.State, "reason", next.Reason, "fix", next.Fix)
	case StateHeld:
		p.log.Error("uploads held: the platform refuses every record the same way, so the fault is the configuration or the platform, not the records; "+
			"nothing goes dead, one probe every retry_max", "state", next.State, "reason", next.Reason, "fix", next.Fix)
	case StateClockSkewed:
		p.log.Error("clock skewed: scan times are wrong", "state", next.State, "reason", next.Reason, "fix", next.Fix)
	}
}
