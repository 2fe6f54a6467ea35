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
)

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
	if testing.Short() {
		t.Skip("re-executes the test binary; -short skips subprocess tests")
	}
	path := filepath.Join(t.TempDir(), "queue.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestFailedJournalWriteKeepsHeldEntry$")
	cmd.Env = append(os.Environ(), heldFailEnv+"="+path)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "delivered 1") || !strings.Contains(string(out), "deliver 2: queue database write failed") {
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
	for i := range 40 { // a file well past 64 KiB
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
