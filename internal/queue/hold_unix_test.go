//go:build linux || darwin || freebsd

package queue

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"scanagent/internal/clock"

	bolt "go.etcd.io/bbolt"
)

// runChild runs the test binary again for t alone, with env set to path,
// and returns what it printed: for a child that sets process-wide limits
// (RLIMIT_FSIZE) or dies without closing the queue. The test itself runs
// the child's side when it finds env set.
func runChild(t *testing.T, env, path string) (string, error) {
	t.Helper()
	if testing.Short() {
		t.Skip("re-executes the test binary; -short skips subprocess tests (under qemu it cannot be exec'ed directly)")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$")
	cmd.Env = append(os.Environ(), env+"="+path)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// fillPast64K stores 2,000 records in the child's queue, a file well past
// 64 KiB, or exits.
func fillPast64K(ctx context.Context, q *Queue) {
	for i := range 40 {
		recs := make([]*Record, 50)
		for j := range recs {
			recs[j] = rec(fmt.Sprint(i*50 + j))
			recs[j].Name = strings.Repeat("n", 60)
		}
		if _, err := q.EnqueueBatch(ctx, recs); err != nil {
			fmt.Println("enqueue:", err)
			os.Exit(1)
		}
	}
}

const heldFailEnv = "SCANAGENT_TEST_HELD_FAIL_DB"

// A journal write that fails while deliveries are held must not take the
// held entry with it: those deliveries were acknowledged, and if bbolt
// cannot take them either, the journal is where the next start finds them.
// The child process writes a held entry into the first slot, then fails
// the next write (to the second slot, and bbolt's pages) with a file-size
// limit, and dies.
func TestFailedJournalWriteKeepsHeldEntry(t *testing.T) {
	if path := os.Getenv(heldFailEnv); path != "" {
		heldFailChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "queue.db")
	out, err := runChild(t, heldFailEnv, path)
	if err != nil || !strings.Contains(out, "delivered 1") || !strings.Contains(out, "deliver 2: queue database write failed") {
		t.Fatalf("child: %v\n%s", err, out)
	}
	q := mustOpen(t, path, Options{})
	if _, err := q.PendingRecord(1); err == nil {
		t.Errorf("record 1, whose delivery was acknowledged, is pending again after the crash\nchild:\n%s", out)
	}
	if _, err := q.PendingRecord(2); err != nil {
		t.Errorf("record 2, whose delivery failed, is not pending: %v", err)
	}
}

func heldFailChild(path string) {
	signal.Ignore(syscall.SIGXFSZ)
	ctx := context.Background()
	q, err := Open(path, Options{Clock: clock.NewFake(time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC))})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	fillPast64K(ctx, q)
	if q.journal.gen%2 == 0 { // so that the held entry goes to slot 0
		q.Stats()
		q.Deliver(ctx, 2000)
	}
	q.Stats()
	if err := q.Deliver(ctx, 1); err != nil {
		fmt.Println("deliver 1:", err)
		os.Exit(1)
	}
	fmt.Println("delivered 1")
	// Writes past 64 KiB fail: the journal's second slot, bbolt's pages.
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: journalSlot, Max: journalSlot}); err != nil {
		fmt.Println("setrlimit:", err)
		os.Exit(1)
	}
	fmt.Println("deliver 2:", q.Deliver(ctx, 2))
	os.Exit(0) // dies without Close
}

const burnEnv = "SCANAGENT_TEST_BURN_DB"

// A journal write that failed may have left its entry whole in the file (a
// failed sync): its generation must be recorded as applied before the queue
// closes, or a later Open would apply scans that were answered with an
// error. The child fails a journal write and the bbolt commit after it,
// lifts the limit and closes without any other write.
func TestFailedJournalGenerationRecordedAtClose(t *testing.T) {
	if path := os.Getenv(burnEnv); path != "" {
		burnChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "queue.db")
	out, err := runChild(t, burnEnv, path)
	var burnt uint64
	for _, line := range strings.Split(out, "\n") {
		fmt.Sscanf(line, "burnt %d", &burnt)
	}
	if err != nil || burnt == 0 || !strings.Contains(out, "enqueue: queue database write failed") {
		t.Fatalf("child: %v\n%s", err, out)
	}
	q := mustOpen(t, path, Options{ReadOnly: true})
	var applied uint64
	if err := q.view(func(tx *bolt.Tx) error { applied = counter(tx, metaJournalGen); return nil }); err != nil {
		t.Fatal(err)
	}
	if applied < burnt {
		t.Errorf("journal_gen %d after Close; want at least the failed write's %d\nchild:\n%s", applied, burnt, out)
	}
}

func burnChild(path string) {
	signal.Ignore(syscall.SIGXFSZ)
	ctx := context.Background()
	q, err := Open(path, Options{Clock: clock.NewFake(time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC))})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	fillPast64K(ctx, q)
	q.Stats()
	if q.journal.gen%2 == 1 { // so that the next entry goes to slot 1, past 64 KiB
		q.Enqueue(ctx, rec("parity"))
		q.Stats()
	}
	var old syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: journalSlot, Max: old.Max}); err != nil {
		fmt.Println("setrlimit:", err)
		os.Exit(1)
	}
	fmt.Println("enqueue:", q.Enqueue(ctx, rec("refused")))
	fmt.Println("burnt", q.burnGen)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		fmt.Println("setrlimit:", err)
		os.Exit(1)
	}
	fmt.Println("close:", q.Close())
	os.Exit(0)
}
