package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// quarantineOnce fills path with n scans, damages it and reopens it with
// OpenOrQuarantine at the clock now; it returns the moved-aside file.
func quarantineOnce(t *testing.T, path string, n int, now time.Time) string {
	t.Helper()
	q := mustOpen(t, path, Options{})
	for i := range n {
		mustEnqueue(t, q, fmt.Sprint(i))
	}
	q.Close()
	if err := os.WriteFile(path, []byte(strings.Repeat("garbage!", 4096)), 0o600); err != nil {
		t.Fatal(err)
	}
	q2, moved, err := OpenOrQuarantine(path, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatalf("OpenOrQuarantine: %v", err)
	}
	q2.Close()
	if moved == "" {
		t.Fatal("nothing moved aside")
	}
	return moved
}

// Item 1: two quarantines at the same clock reading (a terminal with no clock
// battery, restored to the same time after each power loss) must keep both
// damaged files.
func TestQuarantineNeverReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "queue.db")
	now := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	first := quarantineOnce(t, path, 3, now)
	firstBytes, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	second := quarantineOnce(t, path, 5, now)
	if first == second {
		t.Fatalf("both quarantines moved to %s", first)
	}
	if b, err := os.ReadFile(first); err != nil || string(b) != string(firstBytes) {
		t.Fatalf("the first quarantined file %s was replaced or lost (err %v)", first, err)
	}
	if _, err := os.Stat(second); err != nil {
		t.Fatal(err)
	}
}

// Item 2: a rejected frame is r<N>; a bare number is a scan record, even
// when both sequences have reached it.
func TestRefsNeverMixRecordsAndRejectedFrames(t *testing.T) {
	ctx := context.Background()
	q := mustOpen(t, filepath.Join(t.TempDir(), "queue.db"), Options{})
	id := mustEnqueue(t, q, "scan")
	if err := q.Reject(ctx, &Rejection{Reader: "r", Raw: []byte("junk"), Reason: "no xgh"}); err != nil {
		t.Fatal(err)
	}
	items, err := q.List(StateRejected, 0, 0)
	if err != nil || len(items) != 1 {
		t.Fatalf("rejected: %v %v", items, err)
	}
	ref := items[0].Ref()
	if ref.String() != "r1" || id != 1 {
		t.Fatalf("rejected frame shown as %s, record %d; want r1 and 1", ref, id)
	}
	b, _ := json.Marshal(items[0])
	if !strings.Contains(string(b), `"id":"r1"`) {
		t.Fatalf("JSON of a rejected frame: %s", b)
	}
	for s, want := range map[string]Ref{"1": {N: 1}, "r1": {Rejected: true, N: 1}} {
		if got, err := ParseRef(s); err != nil || got != want {
			t.Fatalf("ParseRef(%q) = %v, %v", s, got, err)
		}
	}
	for _, bad := range []string{"", "0", "r0", "r", "R1", "+1", "r+1", "1r", " 1", "x"} {
		if _, err := ParseRef(bad); err == nil {
			t.Errorf("ParseRef(%q) accepted", bad)
		}
	}
	if _, err := q.RetryOne(ctx, ref); !errors.Is(err, ErrState) {
		t.Fatalf("RetryOne(r1) = %v; want ErrState", err)
	}
	if _, err := q.RetryOne(ctx, Ref{N: id}); !errors.Is(err, ErrState) {
		t.Fatalf("RetryOne of a pending record = %v; want ErrState", err)
	}
	if st, err := q.DropOne(ctx, ref); err != nil || st != StateRejected {
		t.Fatalf("DropOne(r1) = %s, %v", st, err)
	}
	if s := mustStats(t, q); s.Pending != 1 || s.Rejected != 0 {
		t.Fatalf("after dropping r1: %+v; want the scan kept", s)
	}
	if _, err := q.DropOne(ctx, ref); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second DropOne(r1) = %v; want ErrNotFound", err)
	}
}

// damageRecord breaks the JSON of the record with that xgh inside the file,
// leaving bbolt's pages intact (bbolt keeps no checksum of values).
func damageRecord(tb testing.TB, path, xgh string) {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	// Every copy: free pages keep older copies of a page.
	needle := []byte(`"xgh":"` + xgh + `"`)
	if !bytes.Contains(b, needle) {
		tb.Fatalf("record %s not in the file", xgh)
	}
	for at := bytes.Index(b, needle); at >= 0; at = bytes.Index(b, needle) {
		copy(b[at:], "\x00\x01\x02")
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		tb.Fatal(err)
	}
}

// Item 3: one undecodable pending record is moved aside (dead, reason
// "record unreadable", raw bytes kept) and the rest flows; list, show,
// export and drop still work.
func TestUnreadableRecordMovedAside(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "queue.db")
	q := mustOpen(t, path, Options{})
	for i := range 5 {
		mustEnqueue(t, q, fmt.Sprintf("x%d", i))
	}
	q.Close()
	damageRecord(t, path, "x0") // the oldest: it heads every window
	q = mustOpen(t, path, Options{})
	if items, err := q.List(StatePending, 0, 0); err != nil || len(items) != 5 {
		t.Fatalf("List pending with an unreadable record: %d items, %v", len(items), err)
	}
	if s, err := q.Stats(); err != nil || s.OldestPending == nil {
		t.Fatalf("Stats: %+v, %v", s, err)
	}
	got, err := q.Pending(0, 2)
	if err != nil || len(got) != 2 || got[0].Xgh != "x1" || got[1].Xgh != "x2" {
		t.Fatalf("Pending(0, 2) = %+v, %v; want x1, x2", got, err)
	}
	dead, err := q.List(StateDead, 0, 0)
	if err != nil || len(dead) != 1 {
		t.Fatalf("dead: %+v, %v", dead, err)
	}
	r := dead[0].Record
	if r.ID != 1 || !strings.HasPrefix(r.DeadReason, "record unreadable") || !bytes.Contains(r.Raw, []byte("\x00\x01\x02")) {
		t.Fatalf("the unreadable record in dead: %+v", r)
	}
	if s := mustStats(t, q); s.Pending != 4 || s.Dead != 1 {
		t.Fatalf("stats: %+v", s)
	}
	if _, err := q.RetryOne(ctx, Ref{N: 1}); !errors.Is(err, ErrState) {
		t.Fatalf("retry of an unreadable record: %v; want ErrState", err)
	}
	if n, err := q.RetryDead(ctx); err != nil || n.Retried != 0 {
		t.Fatalf("retry of every dead record: %d, %v; want the unreadable one left", n, err)
	}
	if st, err := q.DropOne(ctx, Ref{N: 1}); err != nil || st != StateDead {
		t.Fatalf("drop: %s, %v", st, err)
	}
}

// stopAfter is a context whose Err turns to Canceled after n calls: a
// salvage interrupted after its first commits (a power cut, Ctrl-C).
type stopAfter struct {
	context.Context
	n int
}

func (c *stopAfter) Err() error {
	if c.n == 0 {
		return context.Canceled
	}
	c.n--
	return nil
}

// pendingXghs lists the xgh of every pending record, failing on a repeat.
func pendingXghs(t *testing.T, q *Queue) map[string]bool {
	t.Helper()
	items, err := q.List(StatePending, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, it := range items {
		if seen[it.Record.Xgh] {
			t.Fatalf("record %s is pending twice", it.Record.Xgh)
		}
		seen[it.Record.Xgh] = true
	}
	return seen
}

// Item 5: a salvage interrupted after some of its commits, run again, copies
// every record once.
func TestSalvageInterruptedThenRerun(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "old.db")
	q := mustOpen(t, old, Options{})
	fill(t, q, 1200) // three commits of salvageChunk
	q.Close()
	damagePage(t, old, "x00900")

	live := mustOpen(t, filepath.Join(dir, "queue.db"), Options{})
	if _, err := Salvage(&stopAfter{Context: context.Background(), n: 1}, old, live); err == nil {
		t.Fatal("the interrupted salvage reported success")
	}
	if s := mustStats(t, live); s.Pending == 0 {
		t.Fatal("the interrupted salvage committed nothing: the test does not interrupt it in the middle")
	}
	res, err := Salvage(context.Background(), old, live)
	if err != nil {
		t.Fatalf("rerun: %v", err)
	}
	got := pendingXghs(t, live)
	clean := mustOpen(t, filepath.Join(dir, "clean.db"), Options{})
	want, err := Salvage(context.Background(), old, clean)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != want.Pending {
		t.Fatalf("interrupted and rerun: %d records (rerun %+v); one clean salvage: %d", len(got), res, want.Pending)
	}
	if _, err := Salvage(context.Background(), old, live); !errors.Is(err, ErrAlreadySalvaged) {
		t.Fatalf("third salvage: %v; want ErrAlreadySalvaged", err)
	}
}

// Item 5: the journal beside a salvaged file holds acknowledged work the
// file does not: its scans are salvaged and its deliveries are not brought
// back.
func TestSalvageReadsJournalBeside(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "old.db")
	q := mustOpen(t, old, Options{})
	for _, x := range []string{"a", "b", "c"} {
		mustEnqueue(t, q, x)
	}
	q.Close()
	// Acknowledged before the crash, never applied: d enqueued, a delivered.
	leaveEntry(t, old, &entry{Gen: 99, Enq: []journalItem{journalRec(t, 4, "d")}, Del: []uint64{1}})
	live := mustOpen(t, filepath.Join(dir, "queue.db"), Options{})
	res, err := Salvage(context.Background(), old, live)
	if err != nil {
		t.Fatal(err)
	}
	got := pendingXghs(t, live)
	if len(got) != 3 || !got["b"] || !got["c"] || !got["d"] || res.Pending != 3 {
		t.Fatalf("salvaged %v (%+v); want b, c and d", got, res)
	}
}

// Item 7: retrying every dead record at max_pending moves what fits, says
// how many moved and how many stay dead, and wakes the uploader.
func TestRetryDeadAtMaxPending(t *testing.T) {
	ctx := context.Background()
	q := mustOpen(t, filepath.Join(t.TempDir(), "queue.db"), Options{MaxPending: 3})
	for range 3 {
		id := mustEnqueue(t, q, "dead")
		if err := q.Kill(ctx, id, "x"); err != nil {
			t.Fatal(err)
		}
	}
	mustEnqueue(t, q, "p1")
	mustEnqueue(t, q, "p2")
	select {
	case <-q.Wake():
	default:
	}
	res, err := q.RetryDead(ctx)
	if err != nil || res.Retried != 1 || res.Left != 2 {
		t.Fatalf("RetryDead at max_pending = %+v, %v; want 1 moved, 2 left", res, err)
	}
	select {
	case <-q.Wake():
	default:
		t.Fatal("the uploader was not woken for the record moved back")
	}
	if s := mustStats(t, q); s.Pending != 3 || s.Dead != 2 {
		t.Fatalf("stats: %+v", s)
	}
	if res, err := q.RetryDead(ctx); !errors.Is(err, ErrFull) || res.Retried != 0 || res.Left != 2 {
		t.Fatalf("RetryDead with no room = %+v, %v; want ErrFull and 2 left", res, err)
	}
}

// Item 9: on Windows a file that is open and mapped cannot be renamed over,
// so compact closes the source before it replaces it (the order is tested
// here on any OS: Compact picks closeFirst on Windows). Without the lock
// across the rename, a write to the file in between makes it refuse
// instead of losing that write. Elsewhere the lock is held until the
// rename is done.
func TestCompactOrderOfOperations(t *testing.T) {
	tryLock := func(path string) error {
		db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 50 * time.Millisecond})
		if err == nil {
			db.Close()
		}
		return err
	}
	setup := func(t *testing.T) string {
		path := filepath.Join(t.TempDir(), "queue.db")
		q := mustOpen(t, path, Options{})
		fill(t, q, 200)
		q.Close()
		return path
	}
	t.Run("close first", func(t *testing.T) {
		path := setup(t)
		var lockErr error
		if _, err := compact(path, 0, true, func() { lockErr = tryLock(path) }); err != nil {
			t.Fatal(err)
		}
		if lockErr != nil {
			t.Fatalf("before the rename the source was still open (its lock held): %v", lockErr)
		}
		q := mustOpen(t, path, Options{})
		if s := mustStats(t, q); s.Pending != 200 {
			t.Fatalf("after compact: %+v", s)
		}
	})
	t.Run("close first, written meanwhile", func(t *testing.T) {
		path := setup(t)
		_, err := compact(path, 0, true, func() {
			q := mustOpen(t, path, Options{})
			mustEnqueue(t, q, "written during compact")
			q.Close()
		})
		if err == nil || !strings.Contains(err.Error(), "written while") {
			t.Fatalf("compact after a write in between: %v; want a refusal", err)
		}
		q := mustOpen(t, path, Options{})
		if s := mustStats(t, q); s.Pending != 201 {
			t.Fatalf("the write made in between is lost: %+v", s)
		}
		if _, err := os.Stat(path + ".compact-tmp"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("the copy was left behind: %v", err)
		}
	})
	t.Run("lock held", func(t *testing.T) {
		path := setup(t)
		var lockErr error
		if _, err := compact(path, 0, false, func() { lockErr = tryLock(path) }); err != nil {
			t.Fatal(err)
		}
		if lockErr == nil {
			t.Fatal("the lock was free before the rename")
		}
	})
}

// Item 11: an Enqueue whose context ends while it waits for a commit (the
// agent shutting down) either stores the scan and says so, or stores
// nothing: the scanner's ack and the queue agree.
func TestCancelledEnqueueStoresOnlyIfConfirmed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	q := mustOpen(t, path, Options{})
	release := make(chan struct{})
	busy := make(chan error, 1)
	// A commit in progress: the next Enqueue waits for its turn.
	committing := make(chan struct{})
	go func() {
		busy <- q.write(context.Background(), func(*bolt.Tx) error { close(committing); <-release; return nil })
	}()
	<-committing
	ctx, cancel := context.WithCancel(context.Background())
	r := rec("during shutdown")
	got := make(chan error, 1)
	go func() { got <- q.Enqueue(ctx, r) }()
	for queued := 0; queued == 0; {
		q.omu.Lock()
		queued = len(q.queued)
		q.omu.Unlock()
		runtime.Gosched()
	}
	cancel()
	err := <-got
	close(release)
	if err := <-busy; err != nil {
		t.Fatal(err)
	}
	q.Close() // everything handed in is committed by now
	s := mustStats(t, mustOpen(t, path, Options{}))
	if (err == nil) != (s.Pending == 1) {
		t.Fatalf("Enqueue returned %v and the queue holds %d record(s): the scanner's ack and the queue disagree", err, s.Pending)
	}
}

// The rejected bucket keeps the ID as a number, as older versions wrote and
// read it: r<N> is how it is shown, not a change of the file format.
func TestRejectedIDStoredAsNumber(t *testing.T) {
	q := mustOpen(t, filepath.Join(t.TempDir(), "queue.db"), Options{})
	if err := q.Reject(context.Background(), &Rejection{Reader: "r", Raw: []byte("x"), Reason: "y"}); err != nil {
		t.Fatal(err)
	}
	var v []byte
	if err := q.view(func(tx *bolt.Tx) error { v = bytes.Clone(tx.Bucket(bucketRejected).Get(u64(1))); return nil }); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(v, []byte(`{"id":1,`)) {
		t.Fatalf("stored rejection: %s", v)
	}
	if it, err := q.Find(Ref{Rejected: true, N: 1}); err != nil || it.Rejection.ID != 1 || it.Rejection.Reason != "y" {
		t.Fatalf("Find(r1) = %+v, %v", it, err)
	}
}

// Two salvages of the same file at once (two technicians, or a command
// repeated while the first runs) copy each record once: the second finds
// the first's progress and stops.
func TestSalvageConcurrentOnce(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "old.db")
	q := mustOpen(t, old, Options{})
	fill(t, q, 3000)
	q.Close()
	live := mustOpen(t, filepath.Join(dir, "queue.db"), Options{})
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = Salvage(context.Background(), old, live)
		}()
	}
	wg.Wait()
	if s := mustStats(t, live); s.Pending != 3000 {
		t.Fatalf("%d pending after two concurrent salvages of 3000 records (errors %v); want each copied once", s.Pending, errs)
	}
	if (errs[0] == nil) == (errs[1] == nil) && !(errs[0] == nil && errs[1] == nil) {
		t.Fatalf("errors %v", errs)
	}
	for _, err := range errs {
		if err != nil && !errors.Is(err, ErrAlreadySalvaged) {
			t.Errorf("the second salvage: %v; want ErrAlreadySalvaged", err)
		}
	}
}

// RetryDead's "left" counts the dead records that would move with room, not
// the unreadable ones, which never move.
func TestRetryDeadLeftExcludesUnreadable(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "queue.db")
	q := mustOpen(t, path, Options{})
	mustEnqueue(t, q, "x0")
	q.Close()
	damageRecord(t, path, "x0")
	q = mustOpen(t, path, Options{MaxPending: 2})
	if _, err := q.Pending(0, 1); err != nil { // moves x0 aside, unreadable
		t.Fatal(err)
	}
	for range 3 {
		id := mustEnqueue(t, q, "dead")
		if err := q.Kill(ctx, id, "x"); err != nil {
			t.Fatal(err)
		}
	}
	mustEnqueue(t, q, "p1")
	res, err := q.RetryDead(ctx)
	if err != nil || res.Retried != 1 || res.Left != 2 {
		t.Fatalf("RetryDead = %+v, %v; want 1 moved and 2 left (the unreadable record is not left waiting for room)", res, err)
	}
}
