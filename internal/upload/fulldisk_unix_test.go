//go:build linux || darwin || freebsd

package upload

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

	"scanagent/internal/queue"
)

const fullDiskEnv = "SCANAGENT_TEST_FULLDISK_DB"

// TestFullDiskPausesUploads (item 4): when a delivery cannot be recorded
// (the queue file cannot be written: a child process under RLIMIT_FSIZE),
// the uploader stops sending until it can, and says why; once the disk
// frees, the backlog is delivered with at most `concurrency` duplicates.
// Before, the whole backlog was sent while no delivery could be recorded,
// and sent again after a restart.
func TestFullDiskPausesUploads(t *testing.T) {
	if path := os.Getenv(fullDiskEnv); path != "" {
		fullDiskChild(t, path)
		return
	}
	if testing.Short() {
		t.Skip("re-executes the test binary; -short skips subprocess tests (under qemu it cannot be exec'ed directly)")
	}
	path := filepath.Join(t.TempDir(), "queue.db")
	q, err := queue.Open(path, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		r := &queue.Record{Reader: "r", TermName: "t", TermSn: "s", Xgh: fmt.Sprintf("x%03d", i), Name: "n", IDCard: "C", UserType: "u"}
		if err := q.Enqueue(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	q.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFullDiskPausesUploads$", "-test.v")
	cmd.Env = append(os.Environ(), fullDiskEnv+"="+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
}

const fullDiskConcurrency = 4

func fullDiskChild(t *testing.T, path string) {
	signal.Ignore(syscall.SIGXFSZ)
	p := newPlatform(t)
	r := newRig(t, p, path, func(o *Options) { o.Concurrency = fullDiskConcurrency })
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	full := old
	full.Cur = 1 // no file can be written: a full disk
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &full); err != nil {
		t.Fatal(err)
	}
	r.start()
	waitFor(t, "the uploader to pause", func() bool { return strings.Contains(r.logBuf.String(), "uploads paused") })
	// Every request sent is held by its worker: nothing more goes out.
	waitFor(t, "every sent record to be held", func() bool { n, _ := r.up.Paused(); return n == len(p.got()) })
	sent := len(p.got())
	if _, why := r.up.Paused(); sent > fullDiskConcurrency || !strings.Contains(why, "write failed") {
		t.Fatalf("while deliveries cannot be recorded: %d records sent (want at most %d), reason %q", sent, fullDiskConcurrency, why)
	}
	t.Logf("sent while the disk was full: %d", sent)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the backlog to drain", func() bool { return r.stats(t).Pending == 0 })
	r.stop()
	seen := map[string]int{}
	for _, v := range p.got() {
		seen[v.Get("xgh")]++
	}
	dups := len(p.got()) - len(seen)
	t.Logf("requests %d, records %d, duplicates %d", len(p.got()), len(seen), dups)
	if len(seen) != 30 || dups > fullDiskConcurrency {
		t.Fatalf("after the disk freed: %d of 30 records, %d duplicates (at most %d allowed)", len(seen), dups, fullDiskConcurrency)
	}
	if n, _ := r.up.Paused(); n != 0 || !strings.Contains(r.logBuf.String(), "uploads resumed") {
		t.Fatalf("still paused (%d), or no log line saying it resumed:\n%s", n, r.logBuf.String())
	}
}
