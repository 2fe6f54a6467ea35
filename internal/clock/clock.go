// Package clock is the agent's one source of time: the wall clock, timers,
// and a boot clock that keeps counting while the wall clock jumps (an NTP
// correction on a terminal without a clock battery). The queue, the
// uploader and the readers take a Clock so that tests can drive time: Fake
// for timing logic without real sleeps, Shifted for a wall clock that is
// wrong or jumps while timers stay real.
package clock

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"
)

// Clock is what the agent reads time from.
type Clock interface {
	// Now is the wall clock (it may jump).
	Now() time.Time
	// NewTimer and AfterFunc work as time.NewTimer and time.AfterFunc.
	NewTimer(d time.Duration) Timer
	AfterFunc(d time.Duration, f func()) Timer
	// Boot reads the boot clock: an ID of this boot and the time since it
	// began, which never jumps. Two readings with the same ID can be
	// subtracted, also across agent restarts where the system tells
	// (Linux: CLOCK_BOOTTIME and the kernel's boot_id); elsewhere the ID
	// names this process.
	Boot() (id string, since time.Duration)
}

// Timer is a timer made by a Clock.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
	Reset(d time.Duration) bool
}

// System is the real clock.
var System Clock = system{}

type system struct{}

func (system) Now() time.Time                 { return time.Now() }
func (system) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }
func (system) AfterFunc(d time.Duration, f func()) Timer {
	return realTimer{time.AfterFunc(d, f)}
}
func (system) Boot() (string, time.Duration) { return bootClock() }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Stop() bool                 { return r.t.Stop() }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) }

// processBoot stands for the boot where the system does not say: the
// process's own start, on the monotonic clock.
var (
	processStart = time.Now()
	// processID is drawn on first use: where the system names its boot
	// (Linux), it is never needed.
	processID = sync.OnceValue(func() string {
		var b [8]byte
		rand.Read(b[:])
		return "process-" + hex.EncodeToString(b[:])
	})
)

func processClock() (string, time.Duration) { return processID(), time.Since(processStart) }

// Or returns c, or System when c is nil.
func Or(c Clock) Clock {
	if c == nil {
		return System
	}
	return c
}

// Sleep waits d on c, or until done is closed; it reports whether the full
// wait elapsed.
func Sleep(c Clock, d time.Duration, done <-chan struct{}) bool {
	t := c.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return true
	case <-done:
		return false
	}
}

// Shifted is a clock whose wall clock is off by an offset that can change
// (Jump), like a terminal's clock set wrong and then corrected by NTP;
// timers and the boot clock are the base's.
type Shifted struct {
	Clock
	mu     sync.Mutex
	offset time.Duration
}

// NewShifted returns base with its wall clock moved by offset.
func NewShifted(base Clock, offset time.Duration) *Shifted {
	return &Shifted{Clock: Or(base), offset: offset}
}

// Now is the base's wall clock plus the offset.
func (s *Shifted) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Clock.Now().Add(s.offset)
}

// Jump moves the wall clock by d.
func (s *Shifted) Jump(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset += d
}

// Fake is a clock that moves only when told (Advance, Jump). Timers fire
// during Advance, in order of their deadline, on the caller's goroutine
// (AfterFunc's f too).
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	boot   time.Duration
	timers []*fakeTimer
	added  chan struct{} // closed and replaced when a timer is set
}

// NewFake returns a fake clock reading now.
func NewFake(now time.Time) *Fake {
	return &Fake{now: now, boot: time.Hour, added: make(chan struct{})}
}

// Now is the fake wall clock.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Boot reads the fake boot clock; its ID is "fake".
func (f *Fake) Boot() (string, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return "fake", f.boot
}

// Jump moves the wall clock only, as a correction of the system time does.
func (f *Fake) Jump(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

// Advance moves time forward by d, firing the timers due on the way.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	end := f.boot + d
	for {
		var next *fakeTimer
		for _, t := range f.timers {
			if next == nil || t.at < next.at {
				next = t
			}
		}
		if next == nil || next.at > end {
			break
		}
		f.now = f.now.Add(next.at - f.boot)
		f.boot = next.at
		f.removeLocked(next)
		f.mu.Unlock()
		next.fire(f.Now())
		f.mu.Lock()
	}
	f.now = f.now.Add(end - f.boot)
	f.boot = end
	f.mu.Unlock()
}

// Waiters returns how many timers are set.
func (f *Fake) Waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

// WaitForTimers blocks until at least n timers are set (a goroutine under
// test has started waiting).
func (f *Fake) WaitForTimers(n int) {
	for {
		f.mu.Lock()
		have, added := len(f.timers), f.added
		f.mu.Unlock()
		if have >= n {
			return
		}
		<-added
	}
}

func (f *Fake) removeLocked(t *fakeTimer) bool {
	for i, x := range f.timers {
		if x == t {
			f.timers = append(f.timers[:i], f.timers[i+1:]...)
			return true
		}
	}
	return false
}

func (f *Fake) addLocked(t *fakeTimer, d time.Duration) {
	t.at = f.boot + max(d, 0)
	f.timers = append(f.timers, t)
	close(f.added)
	f.added = make(chan struct{})
}

// NewTimer returns a timer that fires when Advance reaches d from now.
func (f *Fake) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{f: f, c: make(chan time.Time, 1)}
	f.mu.Lock()
	f.addLocked(t, d)
	f.mu.Unlock()
	return t
}

// AfterFunc returns a timer that calls fn when Advance reaches d from now.
func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	t := &fakeTimer{f: f, fn: fn}
	f.mu.Lock()
	f.addLocked(t, d)
	f.mu.Unlock()
	return t
}

type fakeTimer struct {
	f  *Fake
	at time.Duration
	c  chan time.Time
	fn func()
}

func (t *fakeTimer) fire(now time.Time) {
	if t.fn != nil {
		t.fn()
		return
	}
	select {
	case t.c <- now:
	default:
	}
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	return t.f.removeLocked(t)
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	was := t.f.removeLocked(t)
	t.f.addLocked(t, d)
	return was
}
