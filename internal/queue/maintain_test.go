package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func fileSize(tb testing.TB, path string) int64 {
	tb.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	return fi.Size()
}

// fill enqueues n records with xgh x00000… in group commits of 1000.
func fill(tb testing.TB, q *Queue, n int) []uint64 {
	tb.Helper()
	ids := make([]uint64, 0, n)
	for start := 0; start < n; start += 1000 {
		errc := make(chan error, 1000)
		recs := make([]*Record, 0, 1000)
		for i := start; i < min(n, start+1000); i++ {
			r := rec(fmt.Sprintf("x%05d", i))
			recs = append(recs, r)
			go func() { errc <- q.Enqueue(context.Background(), r) }()
		}
		for range recs {
			if err := <-errc; err != nil {
				tb.Fatalf("Enqueue: %v", err)
			}
		}
	}
	items, err := q.List(StatePending, 0, 0)
	if err != nil {
		tb.Fatal(err)
	}
	for _, it := range items {
		ids = append(ids, it.Record.ID)
	}
	return ids
}

func TestCompactShrinksAndKeepsEverything(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "queue.db")
	q := mustOpen(t, path, Options{})
	ids := fill(t, q, 20000)
	// Drain all but the last 100; kill 10 of those; keep a token.
	for i := 0; i < 19900; i += 2000 {
		if err := q.Deliver(ctx, ids[i:min(i+2000, 19900)]...); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids[19900:19910] {
		if err := q.Kill(ctx, id, "errorFields: xgh"); err != nil {
			t.Fatal(err)
		}
	}
	tok := Token{AccessToken: "tok", Expiry: time.Unix(5000, 0).UTC()}
	if err := q.SaveToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	before := mustStats(t, q)
	pendBefore, _ := q.List(StatePending, 0, 0)
	deadBefore, _ := q.List(StateDead, 0, 0)
	if _, err := Compact(path, 100*time.Millisecond); !errors.Is(err, ErrLocked) {
		t.Fatalf("Compact while open: got %v, want ErrLocked", err)
	}
	q.Close()

	size := fileSize(t, path)
	c, err := Compact(path, time.Second)
	if err != nil {
		t.Fatalf("Compact: %v", err)
	}
	if c.Before != size || c.After != fileSize(t, path) || c.After*4 > c.Before {
		t.Fatalf("Compact = %+v (file was %d); want at least 4× smaller", c, size)
	}
	if _, err := os.Stat(path + ".compact-tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file left behind: %v", err)
	}
	q = mustOpen(t, path, Options{})
	after := mustStats(t, q)
	if after.Pending != before.Pending || after.Dead != before.Dead || after.Delivered != before.Delivered ||
		!after.OldestPending.Equal(*before.OldestPending) {
		t.Fatalf("stats after compaction %+v, before %+v", after, before)
	}
	pend, _ := q.List(StatePending, 0, 0)
	dead, _ := q.List(StateDead, 0, 0)
	if len(pend) != 90 || len(dead) != 10 || !reflect.DeepEqual(pend, pendBefore) || !reflect.DeepEqual(dead, deadBefore) {
		t.Fatalf("after compaction %d pending, %d dead, or they differ from before", len(pend), len(dead))
	}
	if got, _ := q.LoadToken(); got != tok {
		t.Fatalf("token after compaction = %+v, want %+v", got, tok)
	}
	// The ID sequence survives: a new record comes after every old one.
	if id := mustEnqueue(t, q, "new"); id <= ids[len(ids)-1] {
		t.Fatalf("new ID %d after compaction; want > %d", id, ids[len(ids)-1])
	}
}

func TestCompactRefusesDamagedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	q := mustOpen(t, path, Options{})
	fill(t, q, 2000)
	q.Close()
	damagePage(t, path, "x01000")
	orig, _ := os.ReadFile(path)
	if _, err := Compact(path, time.Second); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Compact of a damaged file: got %v, want ErrCorrupt", err)
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, orig) {
		t.Fatal("Compact changed a damaged file")
	}
}

// damagePage overwrites the page holding the record with that xgh with
// garbage.
func damagePage(tb testing.TB, path, xgh string) {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	// Every page that holds the record: the live one and any stale copy
	// in a free page (the last copy in the file is not always the live one).
	const page = 4096
	key := []byte(`"xgh":"` + xgh + `"`)
	found := false
	for off := 0; ; {
		i := bytes.Index(b[off:], key)
		if i < 0 {
			break
		}
		found = true
		start := (off + i) / page * page
		copy(b[start:start+page], bytes.Repeat([]byte("garbage!"), page/8))
		off = start + page
	}
	if !found {
		tb.Fatalf("record %s not in the file", xgh)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		tb.Fatal(err)
	}
}

func TestSalvage(t *testing.T) {
	const n = 3000
	for _, tc := range []struct {
		name    string
		damage  func(t *testing.T, path string)
		atLeast int // records that must come back
	}{
		{"one bad page", func(t *testing.T, path string) { damagePage(t, path, "x01500") }, n - 60},
		{"two bad pages", func(t *testing.T, path string) {
			damagePage(t, path, "x00700")
			damagePage(t, path, "x02200")
		}, n - 120},
		{"truncated", func(t *testing.T, path string) {
			if err := os.Truncate(path, fileSize(t, path)*2/3); err != nil {
				t.Fatal(err)
			}
		}, 0},
		{"intact", func(t *testing.T, path string) {}, n},
		// The freelist is not needed to read records, but bbolt's check
		// loads it in its own goroutine: a count past the file must not
		// crash the process, and a freelist with many errors must not
		// leave the check's goroutine blocked (the package's leak check).
		{"freelist count past the file", func(t *testing.T, path string) { overrunFreelist(t, path) }, n},
		{"freelist emptied", func(t *testing.T, path string) { emptyFreelist(t, path) }, n},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			old := filepath.Join(dir, "old.db")
			q := mustOpen(t, old, Options{})
			ids := fill(t, q, n)
			killed := map[string]bool{}
			for _, id := range ids[:10] {
				it, _ := q.Find(Ref{N: id})
				killed[it.Record.Xgh] = true
				if err := q.Kill(ctx, id, "errorFields: idCard"); err != nil {
					t.Fatal(err)
				}
			}
			q.Close()
			tc.damage(t, old)
			orig, _ := os.ReadFile(old)

			live := mustOpen(t, filepath.Join(dir, "queue.db"), Options{MaxPending: 5})
			before := mustEnqueue(t, live, "live")
			res, err := Salvage(ctx, old, live)
			if err != nil {
				t.Fatalf("Salvage: %v", err)
			}
			got := res.Pending + res.Dead
			if got < tc.atLeast || got > n || (tc.name == "intact") == res.Damaged {
				t.Fatalf("Salvage = %+v; want at least %d of %d records, damaged %v", res, tc.atLeast, n, tc.name != "intact")
			}
			if now, _ := os.ReadFile(old); !bytes.Equal(now, orig) {
				t.Fatal("Salvage changed the damaged file")
			}
			s := mustStats(t, live)
			if int(s.Pending) != res.Pending+1 || int(s.Dead) != res.Dead {
				t.Fatalf("live stats %+v after salvage %+v", s, res)
			}
			seen := map[string]bool{}
			for _, st := range []State{StatePending, StateDead} {
				items, err := live.List(st, 0, 0)
				if err != nil {
					t.Fatal(err)
				}
				for _, it := range items {
					r := it.Record
					if r.Xgh == "live" {
						continue
					}
					if seen[r.Xgh] || !strings.HasPrefix(r.Xgh, "x") || r.IDCard != "CIPHER" || r.ID <= before {
						t.Fatalf("salvaged record %+v: duplicate, foreign or not after the live ones", r)
					}
					if st == StateDead && (r.DeadReason != "errorFields: idCard" || !killed[r.Xgh]) {
						t.Fatalf("dead record %+v", r)
					}
					seen[r.Xgh] = true
				}
			}
			if _, err := Salvage(ctx, old, live); !errors.Is(err, ErrAlreadySalvaged) {
				t.Fatalf("second Salvage: got %v, want ErrAlreadySalvaged", err)
			}
			t.Logf("%s: %+v", tc.name, res)
		})
	}
}

func TestHealthFull(t *testing.T) {
	ctx := context.Background()
	q := mustOpen(t, filepath.Join(t.TempDir(), "queue.db"), Options{MaxPending: 2})
	mustEnqueue(t, q, "a")
	if q.Health().Full {
		t.Fatal("full after one record of two")
	}
	id := mustEnqueue(t, q, "b")
	select {
	case <-q.HealthChanged():
	default:
		t.Fatal("no HealthChanged signal when the queue filled up")
	}
	if h := q.Health(); !h.Full || h.WriteFailed {
		t.Fatalf("health = %+v, want full", h)
	}
	if err := q.Enqueue(ctx, rec("c")); !errors.Is(err, ErrFull) {
		t.Fatalf("Enqueue when full: %v", err)
	}
	if err := q.Deliver(ctx, id); err != nil {
		t.Fatal(err)
	}
	<-q.HealthChanged()
	if q.Health().Full {
		t.Fatal("still full after a delivery")
	}
}
