package queue

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"scanagent/internal/clock"
)

// TestQueueClockAndRevive: the queue stamps with its clock; Revive puts
// dead records back to pending under their own IDs (their upload order).
func TestQueueClockAndRevive(t *testing.T) {
	fake := clock.NewFake(time.Date(2023, 5, 1, 8, 0, 0, 0, time.UTC))
	q, err := Open(filepath.Join(t.TempDir(), "q.db"), Options{Clock: fake})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()
	var ids []uint64
	for range 3 {
		r := &Record{Reader: "r", TermName: "t", TermSn: "s", Xgh: "x", Name: "n", IDCard: "C", UserType: "u"}
		if err := q.Enqueue(ctx, r); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	fake.Advance(time.Minute)
	for _, id := range ids[:2] {
		if err := q.Kill(ctx, id, "refused"); err != nil {
			t.Fatal(err)
		}
	}
	items, _ := q.List(StateDead, 0, 0)
	if len(items) != 2 || !items[0].Record.DeadAt.Equal(fake.Now()) || !items[0].Record.EnqueuedAt.Equal(fake.Now().Add(-time.Minute)) {
		t.Fatalf("dead %+v", items)
	}
	n, err := q.Revive(ctx, "held: appId", ids[0], ids[1], 999)
	if err != nil || n != 2 {
		t.Fatalf("Revive: %d, %v", n, err)
	}
	pend, err := q.Pending(0, 10)
	if err != nil || len(pend) != 3 || pend[0].ID != ids[0] || pend[1].ID != ids[1] || pend[0].LastError != "held: appId" {
		t.Fatalf("pending after Revive: %+v, %v", pend, err)
	}
	if s, _ := q.Stats(); s.Dead != 0 || s.Pending != 3 {
		t.Fatalf("stats %+v", s)
	}
	when := fake.Now().Add(time.Hour)
	if err := q.SetSentScanTime(ctx, ids[2], when); err != nil {
		t.Fatal(err)
	}
	if r, _ := q.PendingRecord(ids[2]); !r.SentScanTime.Equal(when) {
		t.Fatalf("SentScanTime %v", r.SentScanTime)
	}
}
