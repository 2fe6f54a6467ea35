package upload

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

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
