package queue

import (
	"bytes"
	"context"
	"encoding/binary"
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
// never closed.
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

// vouched checks that the check at open vouches for the file at path (so
// bbolt's own check, and its memory, is not needed) and counts pending
// records right.
func vouched(t *testing.T, path string, pending uint64) {
	t.Helper()
	c, err := fileCheck(path)
	if err != nil {
		t.Fatalf("fileCheck of a sound file: %v", err)
	}
	if got := c.counts[string(bucketPending)]; got != pending {
		t.Fatalf("fileCheck counted %d pending, want %d", got, pending)
	}
}

// The check at open vouches for a sound file of every shape, closed or left
// open by a crash.
func TestCheckVouchesForSoundFiles(t *testing.T) {
	shapes := []struct {
		name string
		make func(t *testing.T, q *Queue)
	}{
		{"empty", func(t *testing.T, q *Queue) {}},
		{"one record", func(t *testing.T, q *Queue) { mustEnqueue(t, q, "a") }},
		{"3000 records, 1000 delivered", func(t *testing.T, q *Queue) { fillShaped(t, q, 3000, 1000) }},
		{"all delivered", func(t *testing.T, q *Queue) { fillShaped(t, q, 2000, 2000) }},
		// A freelist that spans several pages.
		{"20000 records, 19000 delivered", func(t *testing.T, q *Queue) { fillShaped(t, q, 20000, 19000) }},
		// Operator alerts keep their own buckets: a terminal that once sent
		// an alert must still start in bounded memory.
		{"alerts kept", func(t *testing.T, q *Queue) {
			fillShaped(t, q, 300, 100)
			if err := q.UpdateAlerts(context.Background(), AlertUpdate{Put: map[string][]byte{"backlog": []byte("{}")}, Send: [][]byte{[]byte("msg")}}); err != nil {
				t.Fatal(err)
			}
		}},
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
			pending := mustStats(t, q).Pending
			unclean := uncleanCopy(t, q)
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			vouched(t, path, pending)
			vouched(t, unclean, pending)
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
		vouched(t, path, 999) // one of them is dead
	})
	t.Run("counters recounted at open", func(t *testing.T) {
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
// start, whether the agent had stopped cleanly or not.
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
		// bbolt reads the freelist inside bolt.Open: a count that runs past
		// the file is a memory fault there, which no recover catches unless
		// the opening goroutine turns faults into panics.
		{"the freelist's count runs past the file", func(t *testing.T, path string) { overrunFreelist(t, path) }},
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

// A torn meta page (the last commit torn by a power cut): bbolt opens the
// previous transaction, and the check at open vouches for it as bbolt does.
func TestTornMetaVouched(t *testing.T) {
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
	if err != nil || c.txid != txid-1 {
		t.Fatalf("fileCheck: %v; want the previous transaction vouched for", err)
	}
	q2 := mustOpen(t, path, Options{})
	if s := mustStats(t, q2); s.Pending != 299 || s.Dead != 1 {
		t.Fatalf("stats = %+v", s)
	}
}

// The check at open reads damaged bytes by design: whatever they are, it
// answers (sound, or a doubt) without a panic and without allocating more
// than the file's size, and a file it vouches for passes bbolt's own check.
func FuzzCheckFile(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "seed.db")
	q, err := Open(path, Options{})
	if err != nil {
		f.Fatal(err)
	}
	for i := range 400 {
		if err := q.Enqueue(context.Background(), rec(fmt.Sprintf("x%05d", i))); err != nil {
			f.Fatal(err)
		}
	}
	q.Close()
	seed, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint32(0), []byte("garbage!"))
	f.Add(uint32(4096*3+16), []byte{0xff, 0xff, 0xff, 0xff})
	f.Add(uint32(4096*2+8), []byte{0x02, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, at uint32, patch []byte) {
		b := bytes.Clone(seed)
		if len(b) == 0 {
			return
		}
		copy(b[int(at)%len(b):], patch)
		p := filepath.Join(t.TempDir(), "queue.db")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := checkFile(p); err != nil { // a panic fails the fuzz test
			return
		}
		// Vouched for: bbolt's own check must agree.
		db, err := bolt.Open(p, 0o600, &bolt.Options{ReadOnly: true})
		if err != nil {
			t.Fatalf("checkFile vouched for a file bbolt does not open: %v", err)
		}
		defer db.Close()
		if err := db.View(func(tx *bolt.Tx) error {
			for cerr := range tx.Check() {
				return cerr
			}
			return nil
		}); err != nil {
			t.Fatalf("checkFile vouched for a file bbolt's check rejects: %v", err)
		}
	})
}

// overrunFreelist gives the freelist page of the file's current meta a
// count (0xFFFF, then 1<<24 in the first element) that runs far past the
// end of the file.
func overrunFreelist(t *testing.T, path string) {
	editFreelist(t, path, func(page []byte) {
		binary.LittleEndian.PutUint16(page[10:], 0xFFFF)
		binary.LittleEndian.PutUint64(page[pageHeader:], 1<<24)
	})
}

// emptyFreelist sets the count of the current freelist page to 0: every
// free page is then reachable from nowhere, one check error each.
func emptyFreelist(t *testing.T, path string) {
	editFreelist(t, path, func(page []byte) { binary.LittleEndian.PutUint16(page[10:], 0) })
}

// editFreelist changes the freelist page of the file's current meta (the
// meta page with the higher txid) in place.
func editFreelist(t *testing.T, path string, edit func(page []byte)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ps := int(binary.LittleEndian.Uint32(b[pageHeader+8:]))
	m := 0
	if binary.LittleEndian.Uint64(b[ps+pageHeader+48:]) > binary.LittleEndian.Uint64(b[pageHeader+48:]) {
		m = 1
	}
	fl := int(binary.LittleEndian.Uint64(b[m*ps+pageHeader+32:]))
	edit(b[fl*ps : (fl+1)*ps])
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
