package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// leaveEntry writes e into the journal of the closed queue at path, as a
// crash right after the journal's sync leaves it: acknowledged, not in
// bbolt.
func leaveEntry(t *testing.T, path string, e *entry) {
	t.Helper()
	j, _, _, err := openJournal(journalPath(path), true)
	if err != nil || j == nil {
		t.Fatalf("openJournal: %v", err)
	}
	defer j.close()
	if err := j.write(e); err != nil {
		t.Fatal(err)
	}
}

// crashedWith makes a queue holding the records xghs, closes it and leaves
// e in its journal; it returns the queue's path.
func crashedWith(t *testing.T, e *entry, xghs ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "queue.db")
	q := mustOpen(t, path, Options{})
	for _, x := range xghs {
		mustEnqueue(t, q, x)
	}
	q.Close()
	leaveEntry(t, path, e)
	return path
}

func journalRec(t *testing.T, id uint64, xgh string) journalItem {
	t.Helper()
	r := rec(xgh)
	r.ID = id
	v, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return journalItem{ID: id, V: v}
}

func xghs(t *testing.T, q *Queue) string {
	t.Helper()
	recs, err := q.Pending(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, r := range recs {
		s = append(s, fmt.Sprintf("%d:%s", r.ID, r.Xgh))
	}
	return strings.Join(s, " ")
}

// An entry left by a crash is applied at the next Open, once; read-only
// opens count its records and its deliveries without applying them.
func TestJournalEntryAppliedAtOpen(t *testing.T) {
	// Acknowledged before the crash: c and d stored, a delivered.
	path := crashedWith(t, &entry{Gen: 100, Enq: []journalItem{journalRec(t, 3, "c"), journalRec(t, 4, "d")}, Del: []uint64{1}},
		"a", "b")

	ro := mustOpen(t, path, Options{ReadOnly: true})
	if s := mustStats(t, ro); s.Journaled != 2 || s.Pending != 1 || s.Delivered != 1 {
		t.Fatalf("read-only stats = %+v; want 1 pending (b), 1 delivered (a) and 2 journaled (c, d)", s)
	}
	if got := xghs(t, ro); got != "2:b" {
		t.Fatalf("read-only pending = %q; want 2:b", got)
	}
	if items, err := ro.List(StatePending, 0, 0); err != nil || len(items) != 1 || items[0].Record.ID != 2 {
		t.Fatalf("read-only list = %v, %v; want b alone", items, err)
	}
	if _, err := ro.Find(Ref{N: 1}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read-only find of the delivered a: %v; want ErrNotFound", err)
	}
	ro.Close()

	for i := range 2 { // the second open must not apply it again
		q := mustOpen(t, path, Options{})
		if got := xghs(t, q); got != "2:b 3:c 4:d" {
			t.Fatalf("pending = %q", got)
		}
		if s := mustStats(t, q); s.Pending != 3 || s.Delivered != uint64(1+i) || s.Journaled != 0 {
			t.Fatalf("stats = %+v", s)
		}
		// New records continue after the journal's IDs.
		id := mustEnqueue(t, q, "e")
		if id != uint64(5+i) {
			t.Fatalf("next ID = %d, want %d", id, 5+i)
		}
		if err := q.Deliver(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		q.Close()
	}
}

// A torn entry (the crash hit the journal write itself, so nothing was
// acknowledged) and an entry bbolt already holds are both ignored.
func TestJournalTornOrAppliedEntryIgnored(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"torn", func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b[journalHeader+3] ^= 0xff
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"applied", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gen := uint64(1) // "a" was journal generation 1, applied
			if tc.damage != nil {
				gen = 2
			}
			path := crashedWith(t, &entry{Gen: gen, Enq: []journalItem{journalRec(t, 2, "x")}, Del: []uint64{1}}, "a")
			if tc.damage != nil {
				tc.damage(t, journalPath(path))
			}
			q := mustOpen(t, path, Options{})
			if got := xghs(t, q); got != "1:a" {
				t.Fatalf("pending = %q, want only a", got)
			}
			// Cleared for good: a fresh database must not apply it either.
			if _, ok, err := readJournal(journalPath(path)); ok || err != nil {
				t.Fatalf("journal still holds an entry after Open (err %v)", err)
			}
		})
	}
}

// An entry whose IDs were meanwhile given to other records (which only a
// bug could cause) is stored under new IDs rather than dropped.
func TestJournalIDClashKeepsBoth(t *testing.T) {
	path := crashedWith(t, &entry{Gen: 100, Enq: []journalItem{journalRec(t, 1, "b")}}, "a")
	q := mustOpen(t, path, Options{})
	if got := xghs(t, q); got != "1:a 2:b" {
		t.Fatalf("pending = %q, want both", got)
	}
}

// A journal write that fails (here: a descriptor that cannot write) leaves
// the batch to a bbolt commit, which marks the entry's generation as
// applied: should the entry have reached the file after all, it is never
// applied, since its scans were stored (or refused) by that commit.
func TestJournalWriteFailureFallsBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	q := mustOpen(t, path, Options{})
	mustEnqueue(t, q, "a") // generation 1
	mustStats(t, q)        // waits until generation 1 is applied
	ro, err := os.Open(journalPath(path))
	if err != nil {
		t.Fatal(err)
	}
	q.journal.f.Close()
	q.journal.f = ro
	mustEnqueue(t, q, "b") // generation 2 fails: bbolt stores b
	if q.journal != nil {
		t.Fatal("journal still in use after a failed write")
	}
	mustEnqueue(t, q, "c") // plain bbolt
	q.Close()
	// As if the failed write had landed after all.
	leaveEntry(t, path, &entry{Gen: 2, Enq: []journalItem{journalRec(t, 2, "b-again")}})
	q = mustOpen(t, path, Options{})
	if got := xghs(t, q); got != "1:a 2:b 3:c" {
		t.Fatalf("pending = %q", got)
	}
	if q.journal == nil {
		t.Fatal("journal not used again after a restart")
	}
}

// Commands run by hand while the agent is stopped use an existing journal
// but never create one (it would belong to whoever ran them).
func TestNoNewJournal(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "queue.db")
	q := mustOpen(t, path, Options{NoNewJournal: true})
	mustEnqueue(t, q, "a")
	q.Close()
	if _, err := os.Stat(journalPath(path)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("journal created: %v", err)
	}
	q = mustOpen(t, path, Options{})
	mustEnqueue(t, q, "b")
	q.Close()
	leaveEntry(t, path, &entry{Gen: 100, Enq: []journalItem{journalRec(t, 3, "c")}})
	q = mustOpen(t, path, Options{NoNewJournal: true})
	if got := xghs(t, q); got != "1:a 2:b 3:c" {
		t.Fatalf("pending = %q", got)
	}
}

// A pending record whose stored JSON is damaged is still removed when it is
// delivered, without history: it must not block the journal.
func TestDeliverUndecodableRecordWithHistory(t *testing.T) {
	q := mustOpen(t, filepath.Join(t.TempDir(), "queue.db"), Options{KeepDelivered: 5})
	id := mustEnqueue(t, q, "a")
	if err := q.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPending).Put(u64(id), []byte("{not json"))
	}); err != nil {
		t.Fatal(err)
	}
	if err := q.Deliver(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	mustEnqueue(t, q, "b")
	if s := mustStats(t, q); s.Pending != 1 || s.Delivered != 1 {
		t.Fatalf("stats = %+v", s)
	}
}

// The journal outlives a damaged database: its acknowledged scans go into
// the fresh file that replaces it, unless the damaged file says it holds
// them already (salvage brings those back).
func TestJournalSurvivesQuarantine(t *testing.T) {
	// 200 records, so that the pending bucket has pages of its own and
	// one of them can be damaged while the meta bucket stays readable.
	var recs []string
	for i := range 200 {
		recs = append(recs, fmt.Sprint("r", i))
	}
	garbage := func(t *testing.T, path string) {
		if err := os.WriteFile(path, []byte(strings.Repeat("garbage!", 4096)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	onePage := func(t *testing.T, path string) { damagePage(t, path, "r100") }
	for _, tc := range []struct {
		name    string
		applied bool // the entry left is the last one the file holds
		damage  func(t *testing.T, path string)
		want    string
	}{
		{"unapplied, file unreadable", false, garbage, "201:c"},
		// Cannot tell: applied again, a duplicate rather than a loss.
		{"applied, file unreadable", true, garbage, "201:c"},
		{"unapplied, meta readable", false, onePage, "201:c"},
		{"applied, meta readable", true, onePage, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "queue.db")
			q := mustOpen(t, path, Options{})
			for _, x := range recs {
				mustEnqueue(t, q, x)
			}
			q.Close()
			gen := appliedJournalGen(path)
			if gen == 0 {
				t.Fatal("no journal_gen in the file")
			}
			if !tc.applied {
				gen++
			}
			leaveEntry(t, path, &entry{Gen: gen, Enq: []journalItem{journalRec(t, 201, "c")}})
			tc.damage(t, path)
			q, moved, err := OpenOrQuarantine(path, Options{})
			if err != nil || moved == "" {
				t.Fatalf("OpenOrQuarantine: %v (moved %q)", err, moved)
			}
			defer q.Close()
			if got := xghs(t, q); got != tc.want {
				t.Fatalf("pending = %q, want %q", got, tc.want)
			}
			mustEnqueue(t, q, "d")
		})
	}
}

// A batch too large for the journal is committed to bbolt directly, and a
// queue whose journal cannot be created works without one.
func TestJournalFallbacks(t *testing.T) {
	t.Run("large batch", func(t *testing.T) {
		q := mustOpen(t, filepath.Join(t.TempDir(), "queue.db"), Options{})
		recs := make([]*Record, 1000) // about 250 KB of JSON
		for i := range recs {
			recs[i] = rec(fmt.Sprint(i))
		}
		if n, err := q.EnqueueBatch(context.Background(), recs); err != nil || n != len(recs) {
			t.Fatalf("EnqueueBatch = %d, %v", n, err)
		}
		if s := mustStats(t, q); s.Pending != uint64(len(recs)) {
			t.Fatalf("pending = %d", s.Pending)
		}
	})
	t.Run("no journal", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "queue.db")
		// The journal cannot be created (as on a full disk): a dangling
		// link where it would be.
		if err := os.Symlink(filepath.Join(dir, "gone", "journal"), journalPath(path)); err != nil {
			t.Fatal(err)
		}
		q := mustOpen(t, path, Options{})
		if q.journal != nil {
			t.Fatal("journal open on a directory")
		}
		id := mustEnqueue(t, q, "a")
		if err := q.Deliver(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		if s := mustStats(t, q); s.Pending != 0 || s.Delivered != 1 {
			t.Fatalf("stats = %+v", s)
		}
	})
	t.Run("unreadable journal", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "queue.db")
		if err := os.Mkdir(journalPath(path), 0o700); err != nil {
			t.Fatal(err)
		}
		// It may hold acknowledged scans: Open says so rather than
		// starting without them.
		if q, err := Open(path, Options{}); err == nil || !strings.Contains(err.Error(), "journal") {
			if q != nil {
				q.Close()
			}
			t.Fatalf("Open with an unreadable journal: %v", err)
		}
	})
}

// A record is visible to readers as soon as Enqueue returns, and gone as
// soon as Deliver returns, although bbolt gets them a commit later.
func TestJournalReadYourWrites(t *testing.T) {
	q := mustOpen(t, filepath.Join(t.TempDir(), "queue.db"), Options{})
	ctx := context.Background()
	for i := range 200 {
		id := mustEnqueue(t, q, fmt.Sprint(i))
		if _, err := q.Find(Ref{N: id}); err != nil {
			t.Fatalf("Get(%d) right after Enqueue: %v", id, err)
		}
		if err := q.Deliver(ctx, id); err != nil {
			t.Fatal(err)
		}
		if it, err := q.Find(Ref{N: id}); err == nil {
			t.Fatalf("Get(%d) right after Deliver: %+v", id, it)
		}
	}
	if s := mustStats(t, q); s.Pending != 0 || s.Delivered != 200 {
		t.Fatalf("stats = %+v", s)
	}
}

// A delivery still only in the journal when queue.db is quarantined is kept
// beside the moved file, so salvaging it does not bring the delivered
// record back (it would be uploaded a second time).
func TestQuarantineKeepsJournalDeliveries(t *testing.T) {
	var recs []string
	for i := range 200 {
		recs = append(recs, fmt.Sprint("r", i))
	}
	path := filepath.Join(t.TempDir(), "queue.db")
	q := mustOpen(t, path, Options{})
	var ids []uint64
	for _, x := range recs {
		ids = append(ids, mustEnqueue(t, q, x))
	}
	q.Close()
	// r0 and r1 were delivered, in an entry the file never got.
	leaveEntry(t, path, &entry{Gen: appliedJournalGen(path) + 1, Del: []uint64{ids[0], ids[1]}})
	damagePage(t, path, "r100")
	q, moved, err := OpenOrQuarantine(path, Options{})
	if err != nil || moved == "" {
		t.Fatalf("OpenOrQuarantine: %v (moved %q)", err, moved)
	}
	defer q.Close()
	if _, err := Salvage(context.Background(), moved, q); err != nil {
		t.Fatalf("Salvage: %v", err)
	}
	pending, err := q.Pending(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	back := map[string]bool{}
	for _, r := range pending {
		back[r.Xgh] = true
	}
	if back["r0"] || back["r1"] || !back["r2"] {
		t.Fatalf("after salvage r0 %v, r1 %v, r2 %v; want the delivered r0 and r1 not back, r2 back", back["r0"], back["r1"], back["r2"])
	}
}
