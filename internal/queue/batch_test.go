package queue

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

func TestEnqueueBatch(t *testing.T) {
	q := mustOpen(t, filepath.Join(t.TempDir(), "queue.db"), Options{MaxPending: 5})
	first := mustEnqueue(t, q, "before")
	recs := []*Record{rec("a"), rec("b"), rec("c")}
	n, err := q.EnqueueBatch(context.Background(), recs)
	if n != 3 || err != nil {
		t.Fatalf("EnqueueBatch = %d, %v; want 3, nil", n, err)
	}
	for i, r := range recs {
		if want := first + uint64(i) + 1; r.ID != want {
			t.Errorf("recs[%d].ID = %d, want %d", i, r.ID, want)
		}
		if r.EnqueuedAt.IsZero() {
			t.Errorf("recs[%d].EnqueuedAt not set", i)
		}
	}

	// One more fits under MaxPending 5: the first is stored, the rest not.
	more := []*Record{rec("d"), rec("e"), rec("f")}
	n, err = q.EnqueueBatch(context.Background(), more)
	if n != 1 || !errors.Is(err, ErrFull) {
		t.Fatalf("EnqueueBatch over MaxPending = %d, %v; want 1, ErrFull", n, err)
	}
	if more[0].ID == 0 || more[1].ID != 0 {
		t.Errorf("IDs %d, %d: want the first set, the second not", more[0].ID, more[1].ID)
	}
	n, err = q.EnqueueBatch(context.Background(), []*Record{rec("g")})
	if n != 0 || !errors.Is(err, ErrFull) {
		t.Fatalf("EnqueueBatch when full = %d, %v; want 0, ErrFull", n, err)
	}

	got, err := q.Pending(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var xghs []string
	for _, r := range got {
		xghs = append(xghs, r.Xgh)
	}
	if want := []string{"before", "a", "b", "c", "d"}; !equalStrings(xghs, want) {
		t.Errorf("pending %v, want %v", xghs, want)
	}
	if s, err := q.Stats(); err != nil || s.Pending != 5 {
		t.Errorf("Stats().Pending = %d, %v; want 5", s.Pending, err)
	}
	// The sequence continues after a batch.
	if id := mustDeliverAndEnqueue(t, q, got[0].ID, "h"); id != more[0].ID+1 {
		t.Errorf("next ID %d, want %d", id, more[0].ID+1)
	}
}

func mustDeliverAndEnqueue(tb testing.TB, q *Queue, id uint64, xgh string) uint64 {
	tb.Helper()
	if err := q.Deliver(context.Background(), id); err != nil {
		tb.Fatal(err)
	}
	return mustEnqueue(tb, q, xgh)
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func BenchmarkEnqueueBatch(b *testing.B) {
	q := mustOpen(b, filepath.Join(b.TempDir(), "queue.db"), Options{})
	recs := make([]*Record, 100)
	for b.Loop() {
		for i := range recs {
			recs[i] = rec("x")
		}
		if _, err := q.EnqueueBatch(context.Background(), recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkDeliver(b *testing.B) {
	q := mustOpen(b, filepath.Join(b.TempDir(), "queue.db"), Options{})
	recs := make([]*Record, b.N)
	for i := range recs {
		recs[i] = rec("x")
	}
	if _, err := q.EnqueueBatch(context.Background(), recs); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		if err := q.Deliver(context.Background(), recs[i].ID); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPending(b *testing.B) {
	q := mustOpen(b, filepath.Join(b.TempDir(), "queue.db"), Options{})
	recs := make([]*Record, 10000)
	for i := range recs {
		recs[i] = rec("x")
	}
	if _, err := q.EnqueueBatch(context.Background(), recs); err != nil {
		b.Fatal(err)
	}
	var after uint64
	for b.Loop() {
		got, err := q.Pending(after, 64)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) < 64 {
			after = 0
			continue
		}
		after = got[len(got)-1].ID
	}
}
