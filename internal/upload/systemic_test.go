package upload

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"scanagent/internal/clock"
	"scanagent/internal/queue"
)

// TestSystemicHoldProbesOncePerRetryMax: records refused in a row for the
// same field hold the queue: the refused ones go back to pending (none
// dead), and on a driven clock exactly one probe goes out per retry_max
// until one is accepted; then the backlog drains.
func TestSystemicHoldProbesOncePerRetryMax(t *testing.T) {
	p := newPlatform(t)
	var calls atomic.Int64
	accept := atomic.Bool{}
	p.setScan(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if accept.Load() {
			r.ParseForm()
			p.mu.Lock()
			p.received = append(p.received, r.Form)
			p.mu.Unlock()
			io.WriteString(w, `{"type":"success","errorFields":[]}`)
			return
		}
		io.WriteString(w, `{"type":"error","content":"appId 错误","errorFields":["appId"]}`)
	})
	fake := clock.NewFake(time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC))
	const retryMax = time.Minute
	r := newRig(t, p, "", func(o *Options) {
		o.Clock, o.RetryInitial, o.RetryMax, o.Concurrency = fake, time.Second, retryMax, 2
	})
	r.enqueue(t, 6)
	r.start()
	plat := r.up.Platform()
	waitFor(t, "held", func() bool { return plat.Status().State == StateHeld })
	if st := plat.Status(); !strings.Contains(st.Reason, "appId") || !strings.Contains(st.Fix, "[platform] app_id") {
		t.Fatalf("held status %+v does not name the field and the key", st)
	}
	waitFor(t, "a worker waiting for the next probe", func() bool { return fake.Waiters() > 0 })
	// In-flight refusals settle; none is dead.
	waitFor(t, "no record dead", func() bool { s := r.stats(t); return s.Dead == 0 && s.Pending == 6 })
	before := calls.Load()
	if before > 4 {
		t.Fatalf("%d calls before the hold; want hold_after (3) and at most one in flight", before)
	}
	for i := 1; i <= 3; i++ {
		fake.Advance(retryMax)
		waitFor(t, "one probe", func() bool { return calls.Load() == before+int64(i) })
		// Answered: the refusal has put the next probe retry_max ahead
		// (before that, an Advance could fire a timer set for this one).
		waitFor(t, "the probe answered", func() bool {
			return r.up.gate.nextTry().After(fake.Now()) && fake.Waiters() > 0 && plat.Status().State == StateHeld
		})
		if n := calls.Load(); n != before+int64(i) {
			t.Fatalf("after %d retry_max: %d calls, want %d (one probe each)", i, n, before+int64(i))
		}
	}
	if s := r.stats(t); s.Dead != 0 || s.Pending != 6 {
		t.Fatalf("while held: %d pending, %d dead; want 6 and 0", s.Pending, s.Dead)
	}
	accept.Store(true)
	fake.Advance(retryMax)
	waitFor(t, "backlog delivered", func() bool { return r.stats(t).Pending == 0 })
	if got := len(p.got()); got != 6 {
		var xs []string
		for _, v := range p.got() {
			xs = append(xs, v.Get("xgh"))
		}
		t.Fatalf("platform got %d records, want 6: %v\n%s", got, xs, r.logBuf.String())
	}
	if st := plat.Status(); st.State == StateHeld {
		t.Fatalf("state after success: %+v", st) // clock skewed: the fake clock is not the server's
	}
	if !strings.Contains(r.logBuf.String(), "uploads resumed") {
		t.Errorf("no resume line:\n%s", r.logBuf.String())
	}
}

// TestNotFoundHolds: a 404 kills nothing; the first success resumes.
func TestNotFoundHolds(t *testing.T) {
	p := newPlatform(t)
	var notFound atomic.Bool
	notFound.Store(true)
	p.setScan(func(w http.ResponseWriter, r *http.Request) {
		if notFound.Load() {
			http.NotFound(w, r)
			return
		}
		r.ParseForm()
		p.mu.Lock()
		p.received = append(p.received, r.Form)
		p.mu.Unlock()
		io.WriteString(w, `{"type":"success","errorFields":[]}`)
	})
	r := newRig(t, p, "", nil)
	r.enqueue(t, 4)
	r.start()
	waitFor(t, "held", func() bool { return r.up.Platform().Status().State == StateHeld })
	if st := r.up.Platform().Status(); !strings.Contains(st.Fix, "scan_path") {
		t.Fatalf("status %+v does not name scan_path", st)
	}
	notFound.Store(false)
	waitFor(t, "delivered", func() bool { return r.stats(t).Pending == 0 })
	if s := r.stats(t); s.Dead != 0 || len(p.got()) != 4 {
		t.Fatalf("%d dead, %d delivered; want 0 and 4", s.Dead, len(p.got()))
	}
}

// TestScanTimeCorrectedAfterJump: a scan stamped during this boot is sent
// with the time the boot clock says it happened, after the wall clock
// jumped; the record keeps its stamp and notes the time sent.
func TestScanTimeCorrectedAfterJump(t *testing.T) {
	fake := clock.NewFake(time.Date(2023, 3, 1, 8, 0, 0, 0, time.UTC))
	q, err := queue.Open(filepath.Join(t.TempDir(), "q.db"), queue.Options{Clock: fake})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	u, err := New(q, nil, http.DefaultClient, Options{ScanURL: "http://127.0.0.1:1/x", Clock: fake})
	if err != nil {
		t.Fatal(err)
	}
	stamped := fake.Now()
	boot, at := fake.Boot()
	rec := &queue.Record{Reader: "r", TermName: "t", TermSn: "s", Xgh: "1", Name: "n", IDCard: "C", UserType: "u",
		ScanTime: stamped, Boot: boot, BootAt: at}
	if err := q.Enqueue(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	if got := u.scanTime(*rec, u.log); !got.Equal(stamped) {
		t.Fatalf("before any jump: %v, want the stamp %v", got, stamped)
	}
	const years3 = 3 * 365 * 24 * time.Hour
	fake.Advance(10 * time.Second)
	fake.Jump(years3)
	want := stamped.Add(years3)
	if got := u.scanTime(*rec, u.log); !got.Equal(want) {
		t.Fatalf("after the jump: %v, want %v", got, want)
	}
	cur, err := q.PendingRecord(rec.ID)
	if err != nil || !cur.ScanTime.Equal(stamped) || !cur.SentScanTime.Equal(want) {
		t.Fatalf("stored: stamp %v, sent %v (%v); want %v and %v", cur.ScanTime, cur.SentScanTime, err, stamped, want)
	}
	// Stamped in another boot, and the clock now right: sent as stamped,
	// and counted as plainly wrong when it is.
	other := *rec
	other.Boot = "another-boot"
	if got := u.scanTime(other, u.log); !got.Equal(stamped) {
		t.Fatalf("another boot: %v, want the stamp", got)
	}
	if n := u.Stats().Uncorrectable; n != 0 {
		t.Fatalf("a 2023 stamp counted as plainly wrong (%d)", n)
	}
	other.ScanTime = time.Date(1970, 1, 1, 0, 5, 0, 0, time.UTC)
	if got := u.scanTime(other, u.log); !got.Equal(other.ScanTime) || u.Stats().Uncorrectable != 1 {
		t.Fatalf("a 1970 stamp: sent %v, counted %d; want as stamped and counted", got, u.Stats().Uncorrectable)
	}
}

func TestPlatformStates(t *testing.T) {
	fake := clock.NewFake(time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC))
	p := NewPlatform(PlatformOptions{Clock: fake})
	st, changed := p.Watch()
	if st.State != StateUnknown {
		t.Fatalf("initial state %s", st.State)
	}
	fake.Advance(time.Second)
	p.reached()
	select {
	case <-changed:
	default:
		t.Fatal("Watch's channel not closed at a change")
	}
	if st := p.Status(); st.State != StateReachable || !st.Since.Equal(fake.Now()) {
		t.Fatalf("%+v", st)
	}
	h := http.Header{}
	h.Set("Date", fake.Now().Add(3*time.Hour).UTC().Format(http.TimeFormat))
	p.observe(fake.Now(), fake.Now(), h)
	if st := p.Status(); st.State != StateClockSkewed || !strings.Contains(st.Reason, "behind") || st.Fix != FixClock {
		t.Fatalf("%+v", st)
	}
	p.unreachable("connection refused", Fault{Fix: FixRefused}, "dial tcp: refused")
	if st := p.Status(); st.State != StateUnreachable || st.Reason != "connection refused" {
		t.Fatalf("%+v", st)
	}
	p.hold("3 records refused", "check app_id")
	p.credentials("401", "client_secret")
	if st := p.Status(); st.State != StateCredentials {
		t.Fatalf("credentials should win: %+v", st)
	}
	p.credentials("", "")
	if st := p.Status(); st.State != StateHeld {
		t.Fatalf("%+v", st)
	}
	p.unhold()
	h.Set("Date", fake.Now().UTC().Format(http.TimeFormat))
	p.observe(fake.Now(), fake.Now(), h)
	if st := p.Status(); st.State != StateReachable || st.Skew != 0 && st.Skew != time.Second {
		t.Fatalf("%+v", st)
	}
}

func TestFieldNames(t *testing.T) {
	for in, want := range map[string]string{
		`["idCard","appId","idCard"]`:      "appId,idCard",
		`"appId, idCard"`:                  "appId,idCard",
		`{"termSn":"bad"}`:                 "termSn",
		`[{"field":"scanDate","msg":"x"}]`: "scanDate",
	} {
		if got := strings.Join(fieldNames([]byte(in)), ","); got != want {
			t.Errorf("fieldNames(%s) = %q, want %q", in, got, want)
		}
	}
}

// TestHeldProbeCountedErrorKeepsProbing (upload review 1): a probe of a
// hold answered with an error that only counts (no errorFields) re-arms
// the hold's probe instead of leaving the gate waiting for an answer that
// already came: the next probe goes out a retry_max later, and the backlog
// drains once the platform accepts.
func TestHeldProbeCountedErrorKeepsProbing(t *testing.T) {
	p := newPlatform(t)
	var phase atomic.Int64 // 0: 404; 1: one "busy" error; 2: success
	var calls atomic.Int64
	p.setScan(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		switch phase.Load() {
		case 0:
			http.NotFound(w, r)
		case 1:
			phase.Store(2)
			io.WriteString(w, `{"type":"error","content":"busy"}`)
		default:
			io.WriteString(w, `{"type":"success","errorFields":[]}`)
		}
	})
	fake := clock.NewFake(time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC))
	const retryMax = time.Minute
	r := newRig(t, p, "", func(o *Options) {
		o.Clock, o.RetryInitial, o.RetryMax, o.Concurrency = fake, time.Second, retryMax, 2
	})
	// The safety net (the others take over a probe after probeMax) out of
	// reach: this is about the hold re-arming its probe.
	r.up.gate.probeMax = 1000 * time.Hour
	r.enqueue(t, 3)
	r.start()
	plat := r.up.Platform()
	waitFor(t, "held", func() bool { return plat.Status().State == StateHeld })
	waitFor(t, "both workers waiting for the next probe", func() bool { return fake.Waiters() == 2 })
	phase.Store(1)
	drainOnDrivenClock(t, r, fake, retryMax, "the backlog delivered after the busy probe")
	if s := r.stats(t); s.Dead != 0 || s.Delivered != 3 {
		t.Fatalf("stats %+v; want 3 delivered, none dead", s)
	}
	if plat.Status().State == StateHeld {
		t.Fatalf("still held after deliveries: %+v", plat.Status())
	}
}

// TestGateProbeWithoutAnswerTimesOut (upload review 1, the safety net):
// while a probe is out the other workers wait for its answer at most
// retry_max; then one of them probes instead.
func TestGateProbeWithoutAnswerTimesOut(t *testing.T) {
	fake := clock.NewFake(time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC))
	const retryMax = time.Minute
	g := newGate(time.Second, retryMax, fake.Now, func() float64 { return 0 }, fake)
	g.hold(true)
	fake.Advance(retryMax)
	if probe, err := g.acquire(context.Background()); err != nil || !probe {
		t.Fatalf("first acquire after the hold's wait: probe %v, %v; want the probe", probe, err)
	}
	// The probe's answer never reaches the gate.
	got := make(chan bool, 1)
	go func() {
		probe, _ := g.acquire(context.Background())
		got <- probe
	}()
	waitFor(t, "the second worker waiting on a timer", func() bool { return fake.Waiters() > 0 })
	select {
	case <-got:
		t.Fatal("a second worker went while the probe was out")
	default:
	}
	fake.Advance(retryMax - time.Second)
	select {
	case <-got:
		t.Fatal("a second worker went before retry_max")
	default:
	}
	fake.Advance(time.Second)
	if probe := <-got; !probe {
		t.Fatal("the worker that took over did not go as the probe")
	}
}

// TestHoldProbesPastTheRefusedRun (upload review 2): hold_after records
// in a row that are each bad (refused for the same field) hold the queue,
// but the hold probes with the record after them, not with one of them:
// when that one is accepted the hold ends, the run's records go dead one
// by one (each refused alone) and the rest is delivered.
func TestHoldProbesPastTheRefusedRun(t *testing.T) {
	p := newPlatform(t)
	var calls atomic.Int64
	p.setScan(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		r.ParseForm()
		switch r.Form.Get("xgh") {
		case "x000", "x001", "x002":
			io.WriteString(w, `{"type":"error","content":"学工号不存在","errorFields":["xgh"]}`)
			return
		}
		p.mu.Lock()
		p.received = append(p.received, r.Form)
		p.mu.Unlock()
		io.WriteString(w, `{"type":"success","errorFields":[]}`)
	})
	fake := clock.NewFake(time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC))
	const retryMax = time.Minute
	r := newRig(t, p, "", func(o *Options) {
		o.Clock, o.RetryInitial, o.RetryMax, o.Concurrency = fake, time.Second, retryMax, 1
	})
	r.enqueue(t, 10)
	r.start()
	plat := r.up.Platform()
	waitFor(t, "held", func() bool { return plat.Status().State == StateHeld })
	drainOnDrivenClock(t, r, fake, retryMax, "the queue settled")
	if s := r.stats(t); s.Dead != 3 || s.Delivered != 7 {
		t.Fatalf("stats %+v; want 3 dead and 7 delivered", s)
	}
	dead, err := r.q.List(queue.StateDead, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range dead {
		if x := it.Record.Xgh; x != "x000" && x != "x001" && x != "x002" {
			t.Errorf("%s dead; only the refused run should be", x)
		}
	}
	if n := calls.Load(); n > 14 {
		t.Errorf("%d calls; want the run's 3 twice, one probe and 7 deliveries at most a little more", n)
	}
	if st := plat.Status(); st.State == StateHeld {
		t.Fatalf("still held: %+v", st)
	}
}

// drainOnDrivenClock waits until nothing is pending, advancing the driven
// clock by retryMax (at most 20 times) whenever a worker waits on it.
func drainOnDrivenClock(t *testing.T, r *rig, fake *clock.Fake, retryMax time.Duration, what string) {
	t.Helper()
	advanced := 0
	waitFor(t, what, func() bool {
		if r.stats(t).Pending == 0 {
			return true
		}
		if advanced < 20 && fake.Waiters() > 0 {
			fake.Advance(retryMax)
			advanced++
		}
		return false
	})
}
