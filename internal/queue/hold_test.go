package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"scanagent/internal/clock"

	bolt "go.etcd.io/bbolt"
)

// lastTx is the ID of bbolt's last committed transaction: it grows by one
// per commit.
func lastTx(t *testing.T, q *Queue) int {
	t.Helper()
	var id int
	if err := q.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

func pendingIDs(t *testing.T, q *Queue) []uint64 {
	t.Helper()
	recs, err := q.Pending(0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for _, r := range recs {
		ids = append(ids, r.ID)
	}
	return ids
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// A drain's deliveries share bbolt commits: each group costs a journal sync,
// and bbolt is written once per maxHeld IDs or holdFor (a bbolt commit
// writes the whole freelist, which a long drain makes large). Meanwhile the
// uploader's reads leave the held IDs out, every other read sees them
// applied, and a crash loses none of them.
func TestDeliveriesShareCommits(t *testing.T) {
	ctx := context.Background()
	fake := clock.NewFake(time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC))
	path := filepath.Join(t.TempDir(), "queue.db")
	q := mustOpen(t, path, Options{Clock: fake})
	recs := make([]*Record, 300)
	for i := range recs {
		recs[i] = rec("x")
	}
	if _, err := q.EnqueueBatch(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if got := pendingIDs(t, q); len(got) != 300 {
		t.Fatalf("%d pending; want 300", len(got))
	}
	before := lastTx(t, q)
	for id := uint64(1); id <= 150; id++ {
		if err := q.Deliver(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if n := lastTx(t, q) - before; n != 0 {
		t.Errorf("150 deliveries took %d bbolt commits; want none yet (held in the journal)", n)
	}
	q.hmu.Lock()
	pendingN := q.pendingN
	q.hmu.Unlock()
	if pendingN != 150 {
		t.Errorf("the queue counts %d pending; want 150", pendingN)
	}

	// The uploader's reads leave the held deliveries out.
	if got := pendingIDs(t, q); len(got) != 150 || got[0] != 151 {
		t.Fatalf("Pending while held: %d records from %v; want 150 from 151", len(got), got[:min(len(got), 1)])
	}
	if _, err := q.PendingRecord(7); !errors.Is(err, ErrNotFound) {
		t.Errorf("PendingRecord of a held delivery: %v; want ErrNotFound", err)
	}
	if _, err := q.PendingRecord(151); err != nil {
		t.Errorf("PendingRecord(151): %v", err)
	}

	// A crash now: the files as they are on disk open with the deliveries.
	crash := filepath.Join(t.TempDir(), "queue.db")
	copyFile(t, path, crash)
	copyFile(t, journalPath(path), journalPath(crash))
	cq := mustOpen(t, crash, Options{})
	if s := mustStats(t, cq); s.Pending != 150 || s.Delivered != 150 {
		t.Errorf("after a crash: %+v; want 150 pending and 150 delivered", s)
	}
	if got := pendingIDs(t, cq); len(got) != 150 || got[0] != 151 {
		t.Errorf("after a crash, pending from %v (%d); want 150 from 151", got[:min(len(got), 1)], len(got))
	}
	cq.Close()

	// Time applies the held entry, without a reader asking.
	fake.Advance(holdFor)
	if n := lastTx(t, q) - before; n != 1 {
		t.Errorf("after holdFor: %d bbolt commits; want 1", n)
	}

	// Any other reader sees every confirmed delivery, applied first.
	for id := uint64(151); id <= 160; id++ {
		if err := q.Deliver(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if s := mustStats(t, q); s.Pending != 140 || s.Delivered != 160 {
		t.Errorf("Stats: %+v; want 140 pending and 160 delivered", s)
	}
	if n := lastTx(t, q) - before; n != 2 {
		t.Errorf("after Stats: %d bbolt commits; want 2", n)
	}
	items, err := q.List(StatePending, 0, 1)
	if err != nil || len(items) != 1 || items[0].Record.ID != 161 {
		t.Errorf("List: %v, %v; want 161 first", items, err)
	}

	// Enough held IDs are applied without waiting, and an enqueue applies
	// them at once.
	for id := uint64(161); id <= 300; id++ {
		if err := q.Deliver(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	mustEnqueue(t, q, "y")
	if got := pendingIDs(t, q); !slices.Equal(got, []uint64{301}) {
		t.Errorf("pending after the enqueue: %v; want [301]", got)
	}
	q.Close()
	q = mustOpen(t, path, Options{})
	if s := mustStats(t, q); s.Pending != 1 || s.Delivered != 300 {
		t.Errorf("after a restart: %+v; want 1 pending and 300 delivered", s)
	}
}

// A torn write of the next entry leaves the held one readable: the two
// slots alternate.
func TestJournalTornWriteKeepsHeldEntry(t *testing.T) {
	path := crashedWith(t, &entry{Gen: 7, Del: []uint64{1}}, "a", "b", "c")
	f, err := os.OpenFile(journalPath(path), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Entry 8 (1 and 2 delivered) torn: a header whose checksum fails.
	j := &journal{f: f, buf: make([]byte, 0, journalSlot)}
	if err := j.write(&entry{Gen: 8, Del: []uint64{1, 2}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff}, journalHeader+2); err != nil { // slot 8%2 = 0
		t.Fatal(err)
	}
	f.Close()
	q := mustOpen(t, path, Options{})
	if got := xghs(t, q); got != "2:b 3:c" {
		t.Errorf("pending %q; want the held entry 7 applied: 2:b 3:c", got)
	}
}

// settle returns once the committer has done what it had to do, a
// compaction included. The first write may share the commit that makes a
// compaction due; the committer takes the second only after compacting.
func settle(t *testing.T, q *Queue) {
	t.Helper()
	for range 2 {
		if err := q.write(context.Background(), func(*bolt.Tx) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
}

// Once a backlog has drained out of a big file, the queue rewrites the
// file without its free pages, while it runs: everything kept is kept,
// the new file is the one locked, and reads go on meanwhile.
func TestDrainedFileCompacts(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the agent does not compact its file on Windows")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "queue.db")
	var got []Compaction
	q := mustOpen(t, path, Options{KeepDelivered: 3, compactMinFree: 1 << 20, compactMaxLive: 256 << 10,
		Compacted: func(c Compaction, err error) {
			if err != nil {
				t.Errorf("compaction failed: %v", err)
			}
			got = append(got, c)
		}})
	if err := q.SaveToken(ctx, Token{AccessToken: "tok"}); err != nil {
		t.Fatal(err)
	}
	if err := q.Reject(ctx, &Rejection{Reader: "r1", Raw: []byte("junk"), Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	recs := make([]*Record, 6000)
	for i := range recs {
		recs[i] = rec("x")
		recs[i].Name = string(make([]byte, 60)) // about 400 bytes a record
	}
	for i := 0; i < len(recs); i += 500 {
		if _, err := q.EnqueueBatch(ctx, recs[i:i+500]); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Kill(ctx, 1, "refused"); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}

	// A reader goes on while the file is swapped (the race detector
	// watches).
	stop := make(chan struct{})
	read := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				read <- nil
				return
			default:
			}
			if _, err := q.Pending(0, 10); err != nil {
				read <- err
				return
			}
		}
	}()
	for id := uint64(2); id < 5992; id += 10 { // 2 to 5991
		ids := []uint64{id, id + 1, id + 2, id + 3, id + 4, id + 5, id + 6, id + 7, id + 8, id + 9}
		if err := q.Deliver(ctx, ids...); err != nil {
			t.Fatal(err)
		}
	}
	mustStats(t, q) // applies the held deliveries: the commit after which the committer compacts
	settle(t, q)
	s := mustStats(t, q)
	close(stop)
	if err := <-read; err != nil {
		t.Fatalf("reading while compacting: %v", err)
	}
	if len(got) != 1 || got[0].Before != before.Size() || got[0].After >= got[0].Before/4 {
		t.Fatalf("compactions %+v; want one from %d bytes to under a quarter", got, before.Size())
	}
	after, err := os.Stat(path)
	if err != nil || after.Size() != got[0].After {
		t.Fatalf("file now %v, %v; want %d bytes", after, err, got[0].After)
	}
	if _, err := os.Stat(path + ".compact-tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the copy is left: %v", err)
	}
	if s.Pending != 9 || s.Dead != 1 || s.Rejected != 1 || s.Delivered != 5990 {
		t.Errorf("stats after the compaction: %+v", s)
	}
	if ids := pendingIDs(t, q); len(ids) != 9 || ids[0] != 5992 {
		t.Errorf("pending %v; want 5992..6000", ids)
	}
	if tok, err := q.LoadToken(); err != nil || tok.AccessToken != "tok" {
		t.Errorf("token %+v, %v", tok, err)
	}
	if items, err := q.List(StateDelivered, 0, 0); err != nil || len(items) != 3 {
		t.Errorf("delivered history %d, %v; want 3", len(items), err)
	}

	// The new file is the one in use and locked.
	if _, err := Open(path, Options{LockTimeout: 50 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Errorf("a second Open: %v; want ErrLocked", err)
	}
	id := mustEnqueue(t, q, "new")
	if id != 6001 {
		t.Errorf("the next record got ID %d; want 6001 (the sequence kept)", id)
	}
	if err := q.Deliver(ctx, 5992); err != nil {
		t.Fatal(err)
	}
	q.Close()
	q = mustOpen(t, path, Options{})
	if s := mustStats(t, q); s.Pending != 9 || s.Delivered != 5991 {
		t.Errorf("after a restart: %+v", s)
	}
}

// A rewrite that fails leaves the old file in use, and is tried again
// compactRetry later, not at every commit.
func TestCompactFailureKeepsOldFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the agent does not compact its file on Windows")
	}
	ctx := context.Background()
	fake := clock.NewFake(time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC))
	path := filepath.Join(t.TempDir(), "queue.db")
	var mu sync.Mutex
	var errs []error
	var q *Queue
	tried := func() []error {
		settle(t, q)
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(errs)
	}
	q = mustOpen(t, path, Options{Clock: fake, compactMinFree: 1 << 20, compactMaxLive: 256 << 10,
		Compacted: func(c Compaction, err error) {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}})
	// The copy cannot be made: a non-empty directory has its name.
	if err := os.MkdirAll(filepath.Join(path+".compact-tmp", "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	recs := make([]*Record, 500)
	for i := range recs {
		recs[i] = rec("x")
		recs[i].Name = string(make([]byte, 60))
	}
	for range 12 {
		if _, err := q.EnqueueBatch(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	for id := uint64(1); id <= 5990; id += 10 {
		if err := q.Deliver(ctx, id, id+1, id+2, id+3, id+4, id+5, id+6, id+7, id+8, id+9); err != nil {
			t.Fatal(err)
		}
		mustStats(t, q) // a commit each time
	}
	if errs := tried(); len(errs) != 1 || errs[0] == nil {
		t.Fatalf("compactions tried: %v; want one failure", errs)
	}
	if s := mustStats(t, q); s.Pending != 10 {
		t.Errorf("after the failure: %+v", s)
	}
	os.RemoveAll(path + ".compact-tmp")
	fake.Advance(compactRetry)
	mustEnqueue(t, q, "y")
	if errs := tried(); len(errs) != 2 || errs[1] != nil {
		t.Fatalf("compactions tried: %v; want a success after compactRetry", errs)
	}
	if ids := pendingIDs(t, q); len(ids) != 11 || ids[0] != 5991 || ids[10] != 6001 {
		t.Errorf("pending %v", ids)
	}
}

// Held deliveries make room under MaxPending at once, and are counted off
// pending once, however often they are delivered again.
func TestHeldDeliveriesMakeRoom(t *testing.T) {
	ctx := context.Background()
	fake := clock.NewFake(time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)) // the deliveries stay held
	q := mustOpen(t, filepath.Join(t.TempDir(), "queue.db"), Options{MaxPending: 10, Clock: fake})
	for range 10 {
		mustEnqueue(t, q, "x")
	}
	if err := q.Enqueue(ctx, rec("over")); !errors.Is(err, ErrFull) {
		t.Fatalf("the 11th: %v; want ErrFull", err)
	}
	for _, ids := range [][]uint64{{1, 2}, {2, 3}, {3}, {99}} { // 2 and 3 twice, 99 never pending
		if err := q.Deliver(ctx, ids...); err != nil {
			t.Fatal(err)
		}
	}
	recs := []*Record{rec("a"), rec("b"), rec("c"), rec("d")}
	n, err := q.EnqueueBatch(ctx, recs)
	if n != 3 || !errors.Is(err, ErrFull) {
		t.Fatalf("EnqueueBatch after 3 held deliveries: %d, %v; want 3 stored and ErrFull", n, err)
	}
	if s := mustStats(t, q); s.Pending != 10 || s.Delivered != 3 {
		t.Errorf("stats %+v; want 10 pending, 3 delivered", s)
	}
}

// A delivered ID that is not pending is not held: the next record given
// that ID must not be deleted with it, nor hidden from readers.
func TestHeldDeliveryOfAnUnusedID(t *testing.T) {
	ctx := context.Background()
	fake := clock.NewFake(time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC))
	q := mustOpen(t, filepath.Join(t.TempDir(), "queue.db"), Options{Clock: fake})
	mustEnqueue(t, q, "a") // 1
	mustStats(t, q)
	if err := q.Deliver(ctx, 1, 2); err != nil { // 2 is not given yet
		t.Fatal(err)
	}
	if id := mustEnqueue(t, q, "b"); id != 2 {
		t.Fatalf("b got ID %d; want 2", id)
	}
	if _, err := q.PendingRecord(2); err != nil {
		t.Errorf("the acknowledged record 2 is gone: %v", err)
	}
	if s := mustStats(t, q); s.Pending != 1 || s.Delivered != 1 {
		t.Errorf("stats %+v; want 1 pending (b) and 1 delivered (a)", s)
	}
}

// maxHeld deliveries are applied at once, without waiting for holdFor.
func TestMaxHeldApplies(t *testing.T) {
	ctx := context.Background()
	fake := clock.NewFake(time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC))
	q := mustOpen(t, filepath.Join(t.TempDir(), "queue.db"), Options{Clock: fake})
	recs := make([]*Record, maxHeld+10)
	for i := range recs {
		recs[i] = rec("x")
	}
	if _, err := q.EnqueueBatch(ctx, recs); err != nil {
		t.Fatal(err)
	}
	mustStats(t, q)
	before := lastTx(t, q)
	for id := uint64(1); id <= maxHeld; id += 8 {
		if err := q.Deliver(ctx, id, id+1, id+2, id+3, id+4, id+5, id+6, id+7); err != nil {
			t.Fatal(err)
		}
	}
	// The uploader's read waits only for an entry that is not held.
	if ids := pendingIDs(t, q); len(ids) != 10 || ids[0] != maxHeld+1 {
		t.Errorf("pending %d from %v; want 10 from %d", len(ids), ids[:min(1, len(ids))], maxHeld+1)
	}
	if n := lastTx(t, q) - before; n != 1 {
		t.Errorf("%d deliveries took %d bbolt commits; want 1 (the entry applied at maxHeld IDs)", maxHeld, n)
	}
}

// The compaction runs in the committer goroutine: the writer whose commit
// made it due (here a reader's apply of held deliveries; in the agent, a
// scanner's store) is answered without waiting for the copy.
func TestWriterDoesNotWaitForCompaction(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the agent does not compact its file on Windows")
	}
	ctx := context.Background()
	fake := clock.NewFake(time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)) // the last deliveries stay held
	started, release := make(chan struct{}), make(chan struct{})
	defer close(release) // before the queue's Close (a cleanup), also when the test fails
	q := mustOpen(t, filepath.Join(t.TempDir(), "queue.db"), Options{Clock: fake, compactMinFree: 1 << 20, compactMaxLive: 256 << 10,
		Compacted: func(Compaction, error) {
			close(started)
			<-release // the compaction is not over until the test says so
		}})
	recs := make([]*Record, 6000)
	for i := range recs {
		recs[i] = rec("x")
		recs[i].Name = string(make([]byte, 60))
	}
	for i := 0; i < len(recs); i += 500 {
		if _, err := q.EnqueueBatch(ctx, recs[i:i+500]); err != nil {
			t.Fatal(err)
		}
	}
	deliver := func(from, to uint64) {
		var ids []uint64
		for id := from; id <= to; id++ {
			ids = append(ids, id)
		}
		if err := q.Deliver(ctx, ids...); err != nil {
			t.Fatal(err)
		}
	}
	deliver(1, 4000) // more than maxHeld: applied by the committer
	settle(t, q)
	deliver(4001, 5990) // held until a reader comes
	answered := make(chan error, 1)
	go func() { // applies the held deliveries: the compaction is due
		s, err := q.Stats()
		if err == nil && s.Pending != 10 {
			err = fmt.Errorf("stats %+v; want 10 pending", s)
		}
		answered <- err
	}()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the reader's write waited for the compaction")
	}
	<-started // the committer compacts meanwhile
}
