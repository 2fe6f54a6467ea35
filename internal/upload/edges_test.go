package upload

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"scanagent/internal/clock"
	"scanagent/internal/queue"
)

// Item 8: a record dropped (queue drop) while its upload is being retried
// is not uploaded: the worker reads its record again before each attempt.
func TestDroppedWhileRetryingNotUploaded(t *testing.T) {
	p := newPlatform(t)
	var tries atomic.Int64
	p.setScan(func(w http.ResponseWriter, r *http.Request) {
		tries.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	r := newRig(t, p, "", nil)
	r.enqueue(t, 1)
	r.start()
	waitFor(t, "the upload to be retried", func() bool { return tries.Load() >= 2 })
	if _, err := r.q.DropOne(context.Background(), queue.Ref{N: 1}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the worker to give the dropped record up", func() bool {
		return strings.Contains(r.logBuf.String(), "no longer pending")
	})
	sent := tries.Load()
	p.setScan(nil) // the platform is back: the dropped record would go now
	rec := &queue.Record{Reader: "r", TermName: "t", TermSn: "s", Xgh: "after", Name: "n", IDCard: "C", UserType: "u"}
	if err := r.q.Enqueue(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the next record to be delivered", func() bool { return len(p.got()) == 1 })
	r.stop()
	if got := p.got(); tries.Load() != sent || got[0].Get("xgh") != "after" {
		t.Fatalf("after the drop: %d more attempts of the dropped record, delivered %v", tries.Load()-sent, got)
	}
}

// Item 10: a success answer over the body limit, sent for ever by a broken
// platform, makes its record dead after max_error_attempts instead of being
// resent for ever; one with a UTF-8 BOM is delivered.
func TestOversizedAndBOMAnswers(t *testing.T) {
	p := newPlatform(t)
	huge := `{"type":"success","data":"` + strings.Repeat("x", 70<<10) + `"}`
	p.setScan(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		if r.Form.Get("xgh") == "x000" {
			io.WriteString(w, huge)
			return
		}
		io.WriteString(w, "\ufeff"+`{"type":"success","code":"1","errorFields":[]}`)
	})
	r := newRig(t, p, "", nil)
	r.enqueue(t, 2)
	r.start()
	waitFor(t, "both records to settle", func() bool { s := r.stats(t); return s.Pending == 0 })
	r.stop()
	if s := r.stats(t); s.Dead != 1 || s.Delivered != 1 {
		t.Fatalf("stats %+v; want the oversized answer's record dead and the BOM one delivered", s)
	}
	items, err := r.q.List(queue.StateDead, 0, 0)
	if err != nil || len(items) != 1 || !strings.Contains(items[0].Record.DeadReason, "too large") {
		t.Fatalf("dead: %+v, %v", items, err)
	}
}

// TestDroppedWhileWaitingFirstTryNotUploaded (upload review 5): a record
// handed to a worker that waits for the platform's backoff before its
// first try, and dropped meanwhile, is not uploaded: the worker reads its
// record again before the first try too.
func TestDroppedWhileWaitingFirstTryNotUploaded(t *testing.T) {
	p := newPlatform(t)
	var down atomic.Bool
	down.Store(true)
	var calls atomic.Int64
	p.setScan(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		r.ParseForm()
		p.mu.Lock()
		p.received = append(p.received, r.Form)
		p.mu.Unlock()
		io.WriteString(w, `{"type":"success","errorFields":[]}`)
	})
	fake := clock.NewFake(time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC))
	const retryMax = time.Minute
	r := newRig(t, p, "", func(o *Options) {
		o.Clock, o.RetryInitial, o.RetryMax, o.Concurrency = fake, time.Second, retryMax, 2
	})
	r.enqueue(t, 1) // x000
	r.start()
	waitFor(t, "the first try failed and the gate closed", func() bool { return calls.Load() == 1 && fake.Waiters() == 1 })
	late := &queue.Record{Reader: "r", TermName: "t", TermSn: "s", Xgh: "late", Name: "n", IDCard: "C", UserType: "u"}
	if err := r.q.Enqueue(context.Background(), late); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second worker waiting before its first try", func() bool { return fake.Waiters() == 2 })
	if _, err := r.q.DropOne(context.Background(), queue.Ref{N: late.ID}); err != nil {
		t.Fatal(err)
	}
	down.Store(false)
	waitFor(t, "x000 delivered and the dropped record settled", func() bool {
		if len(p.got()) >= 1 && (len(p.got()) > 1 || strings.Contains(r.logBuf.String(), "no longer pending")) {
			return true
		}
		if fake.Waiters() > 0 {
			fake.Advance(retryMax)
		}
		return false
	})
	r.stop()
	for _, f := range p.got() {
		if f.Get("xgh") == "late" {
			t.Fatalf("the dropped record was uploaded: %v", p.got())
		}
	}
}
