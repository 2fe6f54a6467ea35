//go:build linux || darwin || freebsd

package queue

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const fsizeEnv = "SCANAGENT_TEST_FSIZE_DB"

// TestWriteFailureIsReported runs a child process whose file-size limit
// (RLIMIT_FSIZE) stops the queue file from growing: Enqueue must fail with
// ErrWrite, Health must say so, and every record Enqueue confirmed before
// must still be in the file afterwards. Then the limit is lifted and the
// same queue stores again.
func TestWriteFailureIsReported(t *testing.T) {
	if path := os.Getenv(fsizeEnv); path != "" {
		fsizeChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "queue.db")
	q := mustOpen(t, path, Options{})
	mustEnqueue(t, q, "before")
	q.Close()

	out, err := runChild(t, fsizeEnv, path)
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var stored int
	var failure string
	for _, line := range strings.Split(out, "\n") {
		fmt.Sscanf(line, "stored %d", &stored)
		if s, ok := strings.CutPrefix(line, "failed: "); ok {
			failure = s
		}
	}
	if stored == 0 || !strings.Contains(failure, "write failed") || !strings.Contains(out, "health: write_failed") ||
		!strings.Contains(out, "recovered") {
		t.Fatalf("child output:\n%s", out)
	}
	t.Logf("child:\n%s", out)
	q = mustOpen(t, path, Options{})
	// "before", the records confirmed under the limit, and one after it.
	if s := mustStats(t, q); int(s.Pending) != 1+stored+1 {
		t.Fatalf("pending after reopen = %d; want %d (every confirmed record)\n%s", s.Pending, stored+2, out)
	}
}

// fsizeChild is the child's side: it prints what happened on stdout.
func fsizeChild(path string) {
	signal.Ignore(syscall.SIGXFSZ)
	q, err := Open(path, Options{})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	fi, _ := os.Stat(path)
	var old syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old)
	lim := old
	lim.Cur = uint64(fi.Size()) + 64<<10
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		fmt.Println("setrlimit:", err)
		os.Exit(1)
	}
	stored := 0
	for i := 0; i < 100000; i++ {
		err := q.Enqueue(context.Background(), rec(fmt.Sprint(i)))
		if err != nil {
			if !errors.Is(err, ErrWrite) {
				fmt.Println("unexpected error:", err)
				os.Exit(1)
			}
			fmt.Println("failed:", err)
			break
		}
		stored++
	}
	fmt.Printf("stored %d\n", stored)
	if h := q.Health(); h.WriteFailed {
		fmt.Println("health: write_failed")
	}
	syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old)
	if err := q.Enqueue(context.Background(), rec("after")); err != nil || q.Health().WriteFailed {
		fmt.Println("after lifting the limit:", err)
		os.Exit(1)
	}
	fmt.Println("recovered")
	if err := q.Close(); err != nil {
		fmt.Println("close:", err)
		os.Exit(1)
	}
	os.Exit(0)
}
