package queue

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func mustOpen(tb testing.TB, path string, opts Options) *Queue {
	tb.Helper()
	q, err := Open(path, opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { q.Close() })
	return q
}

func rec(xgh string) *Record {
	return &Record{Reader: "r1", TermName: "t", TermSn: "sn", Xgh: xgh, Name: "n", IDCard: "CIPHER", UserType: "u",
		ScanTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func mustEnqueue(tb testing.TB, q *Queue, xgh string) uint64 {
	tb.Helper()
	r := rec(xgh)
	if err := q.Enqueue(context.Background(), r); err != nil {
		tb.Fatalf("Enqueue: %v", err)
	}
	return r.ID
}

func mustStats(tb testing.TB, q *Queue) Stats {
	tb.Helper()
	s, err := q.Stats()
	if err != nil {
		tb.Fatalf("Stats: %v", err)
	}
	return s
}

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "queue.db")
	q := mustOpen(t, path, Options{})
	var ids []uint64
	for i := range 5 {
		ids = append(ids, mustEnqueue(t, q, fmt.Sprint(i)))
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			t.Fatalf("ids not increasing: %v", ids)
		}
	}
	got, err := q.Pending(0, 3)
	if err != nil || len(got) != 3 || got[0].Xgh != "0" || got[2].Xgh != "2" {
		t.Fatalf("Pending(0,3) = %v, %v; want xgh 0..2", got, err)
	}
	got, _ = q.Pending(ids[2], 10)
	if len(got) != 2 || got[0].ID != ids[3] {
		t.Fatalf("Pending(after %d) = %v; want ids %v", ids[2], got, ids[3:])
	}
	if err := q.Deliver(ctx, ids[0], ids[1], 999); err != nil {
		t.Fatal(err)
	}
	if err := q.Kill(ctx, ids[2], "errorFields: idCard"); err != nil {
		t.Fatal(err)
	}
	if err := q.Kill(ctx, ids[0], "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Kill of a delivered record: got %v, want ErrNotFound", err)
	}
	s := mustStats(t, q)
	if s.Pending != 2 || s.Dead != 1 || s.Delivered != 2 || s.OldestPending == nil {
		t.Fatalf("stats = %+v; want pending 2, dead 1, delivered 2, oldest set", s)
	}
	it, err := q.Find(Ref{N: ids[2]})
	if err != nil || it.State != StateDead || it.Record.DeadReason != "errorFields: idCard" {
		t.Fatalf("Get dead = %+v, %v", it, err)
	}
	n, err := q.RetryDead(ctx)
	if err != nil || n.Retried != 1 {
		t.Fatalf("Retry all = %d, %v; want 1", n, err)
	}
	got, _ = q.Pending(0, 10)
	if len(got) != 3 || got[2].Xgh != "2" || got[2].ID <= ids[4] || got[2].LastError == "" {
		t.Fatalf("after retry pending = %+v; want the retried record last with a new ID", got)
	}
	if err := q.Note(ctx, got[0].ID, 2, "HTTP 503", time.Unix(100, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := q.DropOne(ctx, Ref{N: got[1].ID}); err != nil {
		t.Fatal(err)
	}
	q.Close()

	// Everything survives a reopen, counters included.
	q = mustOpen(t, path, Options{})
	s = mustStats(t, q)
	if s.Pending != 2 || s.Dead != 0 || s.Delivered != 2 {
		t.Fatalf("stats after reopen = %+v; want pending 2, dead 0, delivered 2", s)
	}
	it, _ = q.Find(Ref{N: got[0].ID})
	if it.Record.Attempts != 2 || it.Record.LastError != "HTTP 503" {
		t.Fatalf("noted record = %+v", it.Record)
	}
}

func TestMaxPending(t *testing.T) {
	q := mustOpen(t, filepath.Join(t.TempDir(), "queue.db"), Options{MaxPending: 2})
	mustEnqueue(t, q, "a")
	id := mustEnqueue(t, q, "b")
	if err := q.Enqueue(context.Background(), rec("c")); !errors.Is(err, ErrFull) {
		t.Fatalf("third Enqueue: got %v, want ErrFull", err)
	}
	if err := q.Deliver(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	mustEnqueue(t, q, "c")
	if s := mustStats(t, q); s.Pending != 2 {
		t.Fatalf("pending = %d, want 2", s.Pending)
	}
}

func TestConcurrentEnqueueAllDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	q := mustOpen(t, path, Options{})
	var wg sync.WaitGroup
	const n = 200
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := q.Enqueue(context.Background(), rec(fmt.Sprint(i))); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	q.Close()
	q = mustOpen(t, path, Options{})
	all, err := q.Pending(0, 1000)
	if err != nil || len(all) != n {
		t.Fatalf("after reopen %d pending, %v; want %d", len(all), err, n)
	}
}

func TestRejectedBounded(t *testing.T) {
	q := mustOpen(t, filepath.Join(t.TempDir(), "queue.db"), Options{MaxRejected: 3})
	for i := range 5 {
		if err := q.Reject(context.Background(), &Rejection{Reader: "r", Raw: []byte{byte(i)}, Reason: "bad"}); err != nil {
			t.Fatal(err)
		}
	}
	items, err := q.List(StateRejected, 0, 0)
	if err != nil || len(items) != 3 || items[0].Rejection.Raw[0] != 2 {
		t.Fatalf("rejected = %+v, %v; want the newest 3", items, err)
	}
	if s := mustStats(t, q); s.Rejected != 3 {
		t.Fatalf("rejected count = %d, want 3", s.Rejected)
	}
}

func TestKeepDelivered(t *testing.T) {
	q := mustOpen(t, filepath.Join(t.TempDir(), "queue.db"), Options{KeepDelivered: 2})
	var ids []uint64
	for i := range 3 {
		ids = append(ids, mustEnqueue(t, q, fmt.Sprint(i)))
	}
	if err := q.Deliver(context.Background(), ids...); err != nil {
		t.Fatal(err)
	}
	items, _ := q.List(StateDelivered, 0, 0)
	if len(items) != 2 || items[0].Record.Xgh != "1" {
		t.Fatalf("delivered history = %+v; want the last 2", items)
	}
	if s := mustStats(t, q); s.Delivered != 3 || s.Pending != 0 {
		t.Fatalf("stats = %+v", s)
	}
}

func TestTokenPersisted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	q := mustOpen(t, path, Options{})
	want := Token{AccessToken: "abc", Expiry: time.Unix(2000, 0).UTC(), FetchedAt: time.Unix(1000, 0).UTC()}
	if err := q.SaveToken(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	q.Close()
	q = mustOpen(t, path, Options{})
	got, err := q.LoadToken()
	if err != nil || got != want {
		t.Fatalf("LoadToken = %+v, %v; want %+v", got, err, want)
	}
}

func TestLockedDoesNotHang(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	mustOpen(t, path, Options{})
	_, err := Open(path, Options{LockTimeout: 100 * time.Millisecond, ReadOnly: true})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: got %v, want ErrLocked", err)
	}
}

func TestCorruptFileQuarantined(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt func(t *testing.T, path string)
	}{
		{"truncated", func(t *testing.T, path string) {
			fi, _ := os.Stat(path)
			if err := os.Truncate(path, fi.Size()/3); err != nil {
				t.Fatal(err)
			}
		}},
		{"garbage", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte(strings.Repeat("garbage!", 4096)), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "queue.db")
			q := mustOpen(t, path, Options{})
			for i := range 300 {
				mustEnqueue(t, q, fmt.Sprint(i))
			}
			q.Close()
			tc.corrupt(t, path)
			q2, moved, err := OpenOrQuarantine(path, Options{})
			if err != nil {
				t.Fatalf("OpenOrQuarantine: %v", err)
			}
			defer q2.Close()
			if moved == "" || !strings.Contains(moved, ".corrupt-") {
				t.Fatalf("moved = %q; want a quarantined path", moved)
			}
			if _, err := os.Stat(moved); err != nil {
				t.Fatalf("quarantined file: %v", err)
			}
			if s := mustStats(t, q2); s.Pending != 0 {
				t.Fatalf("fresh queue has %d pending", s.Pending)
			}
			mustEnqueue(t, q2, "after")
		})
	}
}

func BenchmarkEnqueueParallel(b *testing.B) {
	q := mustOpen(b, filepath.Join(b.TempDir(), "queue.db"), Options{})
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := q.Enqueue(context.Background(), rec("x")); err != nil {
				b.Error(err)
			}
		}
	})
}
