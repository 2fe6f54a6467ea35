package upload

import (
	"context"
	"testing"
	"time"

	"scanagent/internal/clock"
	"scanagent/internal/queue"
)

// sentScanDate enqueues rec, waits for its delivery and returns the
// scanDate the platform received, read in the platform's zone.
func sentScanDate(t *testing.T, r *rig, p *platform, rec *queue.Record) time.Time {
	t.Helper()
	before, done := len(p.got()), r.up.Stats().Delivered
	if err := r.q.Enqueue(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	// Delivered counts once the answer is read (and its Date measured):
	// the caller may then move the clock.
	waitFor(t, "the record delivered", func() bool { return r.up.Stats().Delivered == done+1 })
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	got, err := time.ParseInLocation("2006-01-02 15:04:05", p.got()[before].Get("scanDate"), loc)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func near(a, b time.Time, d time.Duration) bool { return a.Sub(b) <= d && b.Sub(a) <= d }

// TestEarlierBootStampNotShiftedIntoTheFuture (upload review 3, case A): a
// scan stamped by a right clock in an earlier boot, sent after the
// terminal rebooted to 2000-01-01, is not moved by the measured skew
// (+26 years) into the future: it is sent as stamped.
func TestEarlierBootStampNotShiftedIntoTheFuture(t *testing.T) {
	p := newPlatform(t)
	fake := clock.NewFake(time.Date(2000, 1, 1, 0, 0, 10, 0, time.UTC))
	r := newRig(t, p, "", func(o *Options) { o.Clock, o.Concurrency = fake, 1 })
	r.start()
	stamped := time.Now().Add(-24 * time.Hour).Truncate(time.Second) // yesterday, by the platform's (real) clock
	rec := &queue.Record{Reader: "r", TermName: "t", TermSn: "s", Xgh: "1", Name: "n", IDCard: "C", UserType: "u",
		ScanTime: stamped, Boot: "an-earlier-boot", BootAt: time.Hour}
	got := sentScanDate(t, r, p, rec)
	if skew, known := r.up.Platform().Skew(); !known || skew < 20*365*24*time.Hour {
		t.Fatalf("skew %v (%v); want the 2000 clock measured as far behind", skew, known)
	}
	if !got.Equal(stamped) {
		t.Fatalf("sent %v; want the stamp %v (the skew-shifted time is in the future)", got, stamped)
	}
	if n := r.up.Stats().Corrected; n != 0 {
		t.Fatalf("%d corrected; want none", n)
	}
}

// TestStaleSkewDroppedAfterClockStep (upload review 3, case B): the skew
// measured while the clock read 2000 is dropped once the clock is stepped
// right (the wall clock moved against the boot clock): a scan stamped
// after the step is sent as stamped, not 26 years later; one stamped
// before the step is still corrected.
func TestStaleSkewDroppedAfterClockStep(t *testing.T) {
	p := newPlatform(t)
	fake := clock.NewFake(time.Date(2000, 1, 1, 0, 0, 10, 0, time.UTC))
	r := newRig(t, p, "", func(o *Options) { o.Clock, o.Concurrency = fake, 1 })
	r.start()
	mk := func(x string) *queue.Record {
		boot, at := fake.Boot()
		return &queue.Record{Reader: "r", TermName: "t", TermSn: "s", Xgh: x, Name: "n", IDCard: "C", UserType: "u",
			ScanTime: fake.Now(), Boot: boot, BootAt: at}
	}
	if got := sentScanDate(t, r, p, mk("before-step")); !near(got, time.Now(), time.Minute) {
		t.Fatalf("stamped on the 2000 clock, sent %v; want now, corrected", got)
	}
	early := mk("stamped-before-step")
	fake.Advance(10 * time.Second)
	fake.Jump(time.Now().Sub(fake.Now()).Round(time.Second)) // NTP steps the clock right
	after := mk("after-step")
	if got := sentScanDate(t, r, p, after); !near(got, after.ScanTime, 2*time.Second) {
		t.Fatalf("stamped %v after the step, sent %v; want as stamped", after.ScanTime, got)
	}
	if got := sentScanDate(t, r, p, early); !near(got, after.ScanTime.Add(-10*time.Second), 2*time.Second) {
		t.Fatalf("stamped on the 2000 clock, sent after the step as %v; want %v", got, after.ScanTime.Add(-10*time.Second))
	}
}
