package queue

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// fillShaped enqueues n records x00000…, delivers the first del of them, and
// leaves one dead record, one rejected frame and a token, so that every
// bucket has something and the file has free pages.
func fillShaped(t *testing.T, q *Queue, n, del int) {
	t.Helper()
	recs := make([]*Record, n)
	for i := range recs {
		recs[i] = rec(fmt.Sprintf("x%05d", i))
	}
	ctx := context.Background()
	for i := 0; i < n; i += 100 {
		if _, err := q.EnqueueBatch(ctx, recs[i:min(n, i+100)]); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < del; i += 50 {
		var ids []uint64
		for _, r := range recs[i:min(del, i+50)] {
			ids = append(ids, r.ID)
		}
		if err := q.Deliver(ctx, ids...); err != nil {
			t.Fatal(err)
		}
	}
	if del < n {
		if err := q.Kill(ctx, recs[n-1].ID, "test"); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Reject(ctx, &Rejection{Reader: "r1", Raw: []byte("junk"), Reason: "test", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := q.SaveToken(ctx, Token{AccessToken: "tok", Expiry: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
}

// uncleanCopy copies q's file as a crash would leave it: open, written to,
// never closed (the clean-shutdown marker was deleted by the open).
func uncleanCopy(t *testing.T, q *Queue) string {
	t.Helper()
	mustStats(t, q) // the journal's entry is applied
	b, err := os.ReadFile(q.Path())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "queue.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// openedWith opens path, reports whether Open ran the full check, and
// closes it.
func openedWith(t *testing.T, path string, opts Options) (full bool) {
	t.Helper()
	q, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	full = q.fullCheck
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	return full
}

// A file the agent closed gets the check of a clean stop, whatever its
// shape; any other file has every leaf read. Either way fileCheck vouches
// for a sound file, so bbolt's own check (and its memory) is never needed.
func TestCheckAtOpen(t *testing.T) {
	shapes := []struct {
		name string
		make func(t *testing.T, q *Queue)
	}{
		{"empty", func(t *testing.T, q *Queue) {}},
		{"one record", func(t *testing.T, q *Queue) { mustEnqueue(t, q, "a") }},
		{"3000 records, 1000 delivered", func(t *testing.T, q *Queue) { fillShaped(t, q, 3000, 1000) }},
		{"all delivered", func(t *testing.T, q *Queue) { fillShaped(t, q, 2000, 2000) }},
		{"a record larger than a page", func(t *testing.T, q *Queue) {
			fillShaped(t, q, 500, 0)
			r := rec("big")
			r.Name = strings.Repeat("名", 5000)
			if err := q.Enqueue(context.Background(), r); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "queue.db")
			q := mustOpen(t, path, Options{KeepDelivered: 100})
			sh.make(t, q)
			unclean := uncleanCopy(t, q)
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			if c, err := fileCheck(path); err != nil || !c.clean {
				t.Fatalf("fileCheck of a file closed cleanly: %v", err)
			}
			if c, err := fileCheck(unclean); err != nil || c.clean {
				t.Fatalf("fileCheck of a file left open: %v", err)
			}
			if openedWith(t, path, Options{ReadOnly: true}) {
				t.Fatal("read-only open after a clean stop ran the full check")
			}
			if openedWith(t, path, Options{}) {
				t.Fatal("open after a clean stop ran the full check")
			}
			if !openedWith(t, unclean, Options{}) {
				t.Fatal("open after an unclean stop did not read every leaf")
			}
			// Closed cleanly by that open: quick again.
			if openedWith(t, unclean, Options{}) {
				t.Fatal("open after the clean stop that followed ran the full check")
			}
		})
	}
	t.Run("compacted", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "queue.db")
		q := mustOpen(t, path, Options{})
		fillShaped(t, q, 3000, 2000)
		q.Close()
		if _, err := Compact(path, time.Second); err != nil {
			t.Fatal(err)
		}
		openedWith(t, path, Options{}) // whichever: the copy is new
		if openedWith(t, path, Options{}) {
			t.Fatal("open after a clean stop ran the full check")
		}
	})
	t.Run("written by another program after the clean stop", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "queue.db")
		q := mustOpen(t, path, Options{})
		fillShaped(t, q, 300, 0)
		q.Close()
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketPending).Put(u64(1<<40), []byte("{}"))
		}); err != nil {
			t.Fatal(err)
		}
		db.Close()
		if !openedWith(t, path, Options{}) {
			t.Fatal("the marker of an older transaction was taken as a clean stop")
		}
	})
	t.Run("counters recounted after an unclean stop", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "queue.db")
		q := mustOpen(t, path, Options{})
		fillShaped(t, q, 300, 100)
		unclean := uncleanCopy(t, q)
		q.Close()
		db, err := bolt.Open(unclean, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(func(tx *bolt.Tx) error { return setCounter(tx, metaPendingN, 7) }); err != nil {
			t.Fatal(err)
		}
		db.Close()
		q2 := mustOpen(t, unclean, Options{})
		if s := mustStats(t, q2); s.Pending != 199 {
			t.Fatalf("pending = %d, want 199 (recounted)", s.Pending)
		}
	})
}

// pageOf returns the page size and the ID of a page picked by pick from
// the file at path, read with bbolt.
func pageOf(t *testing.T, path string, pick func(tx *bolt.Tx) uint64) (int, uint64) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var id uint64
	if err := db.View(func(tx *bolt.Tx) error { id = pick(tx); return nil }); err != nil {
		t.Fatal(err)
	}
	return db.Info().PageSize, id
}

func overwritePage(t *testing.T, path string, pageSize int, id uint64, with []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(bytes.Repeat(with, pageSize/len(with)), int64(id)*int64(pageSize)); err != nil {
		t.Fatal(err)
	}
}

// A file damaged while the agent was stopped is moved aside at the next
// start, whether the agent had stopped cleanly or not (every leaf read):
// the clean-shutdown marker never skips finding damage done after the stop.
func TestDamageWhileStoppedQuarantined(t *testing.T) {
	pendingRoot := func(tx *bolt.Tx) uint64 { return uint64(tx.Bucket(bucketPending).Root()) }
	damages := []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"a leaf in the middle garbled", func(t *testing.T, path string) { damagePage(t, path, "x01500") }},
		{"a leaf in the middle zeroed", func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			at := bytes.LastIndex(b, []byte(`"xgh":"x02000"`)) / 4096 * 4096
			copy(b[at:at+4096], make([]byte, 4096))
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"the pending bucket's root page garbled", func(t *testing.T, path string) {
			ps, id := pageOf(t, path, pendingRoot)
			overwritePage(t, path, ps, id, []byte("garbage!"))
		}},
		{"a leaf's copy over another leaf", func(t *testing.T, path string) {
			// A whole, well-formed page in the wrong place (a misdirected
			// write): it says it is another page.
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			from := bytes.LastIndex(b, []byte(`"xgh":"x01200"`)) / 4096 * 4096
			to := bytes.LastIndex(b, []byte(`"xgh":"x02500"`)) / 4096 * 4096
			copy(b[to:to+4096], b[from:from+4096])
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"truncated", func(t *testing.T, path string) {
			fi, _ := os.Stat(path)
			if err := os.Truncate(path, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, stop := range []string{"clean", "unclean"} {
		for _, d := range damages {
			t.Run(stop+"/"+d.name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "queue.db")
				q := mustOpen(t, path, Options{})
				fillShaped(t, q, 3000, 500)
				if stop == "unclean" {
					path = uncleanCopy(t, q)
				}
				q.Close()
				if stop == "clean" && openedWith(t, path, Options{ReadOnly: true}) {
					t.Fatal("the clean stop was not recognised")
				}
				d.damage(t, path)
				q2, moved, err := OpenOrQuarantine(path, Options{})
				if err != nil {
					t.Fatalf("OpenOrQuarantine: %v", err)
				}
				defer q2.Close()
				if moved == "" {
					t.Fatal("the damaged file was not moved aside")
				}
				if s := mustStats(t, q2); s.Pending != 0 {
					t.Fatalf("fresh queue has %d pending", s.Pending)
				}
			})
		}
	}
}

// A torn meta page (the last commit torn by a power cut) is not a clean
// stop: bbolt opens the previous transaction, and the full check vouches for
// it with plain reads.
func TestTornMetaGetsTheFullCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	q := mustOpen(t, path, Options{})
	fillShaped(t, q, 300, 0)
	q.Close()
	_, _, txid, ok, err := readMeta(path)
	if err != nil || !ok {
		t.Fatalf("readMeta: %v %v", ok, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The meta pages alternate: transaction N is in page N % 2.
	if _, err := f.WriteAt([]byte("torn"), int64(txid%2)*4096+metaOffset+20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	c, err := fileCheck(path)
	if err != nil || c.clean || c.txid != txid-1 {
		t.Fatalf("fileCheck = %+v, %v; want the previous transaction, not clean", c, err)
	}
	q2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	if !q2.fullCheck {
		t.Fatal("a torn meta page did not lead to the full check")
	}
	if s := mustStats(t, q2); s.Pending != 299 || s.Dead != 1 {
		t.Fatalf("stats = %+v", s)
	}
}
