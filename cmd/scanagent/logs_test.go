//go:build unix

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// runFor runs `scanagent run` with stderr until stop is called; it returns
// the exit status.
func runFor(t *testing.T, cfgPath string, stderr io.Writer) (stop func() int) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- runMain(ctx, []string{"-c", cfgPath, "run"}, io.Discard, stderr) }()
	return func() int { cancel(); return <-done }
}

func waitFile(t *testing.T, path, want string) string {
	t.Helper()
	var got string
	if err := waitUntil(context.Background(), 10*time.Second, func() bool {
		b, _ := os.ReadFile(path)
		got = string(b)
		return strings.Contains(got, want)
	}); err != nil {
		t.Fatalf("%s never contained %q:\n%s", path, want, got)
	}
	return got
}

// SIGHUP re-opens the log file (after logrotate moved it) instead of
// ending the agent; log_format = "json" writes one object a line.
func TestHangupReopensLog(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "agent.log")
	body := validConfig(t, filepath.Join(dir, "data"), "http://127.0.0.1:1", filepath.Join(dir, "no-such-port"))
	body = strings.Replace(body, "[platform]", fmt.Sprintf("log_file = %q\nlog_format = \"json\"\nlog_max_size = 1\nlog_max_files = 2\n\n[platform]", logPath), 1)
	stop := runFor(t, writeFile(t, "config.toml", body), io.Discard)
	waitFile(t, logPath, "scanagent started")
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	got := waitFile(t, logPath, "SIGHUP: log file re-opened")
	if code := stop(); code != 0 {
		t.Fatalf("run exited %d after SIGHUP", code)
	}
	sc := bufio.NewScanner(strings.NewReader(got))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil || m["msg"] == nil || m["level"] == nil {
			t.Errorf("not a JSON log line: %q (%v)", sc.Text(), err)
		}
	}
	old, _ := os.ReadFile(logPath + ".1")
	if !strings.Contains(string(old), "scanagent started") || strings.Contains(string(old), "SIGHUP") {
		t.Errorf("the moved file:\n%s", old)
	}
}

// Under systemd (stderr is the stream JOURNAL_STREAM names) each line
// carries its priority, so journalctl -p err finds the errors.
func TestJournalPrioritiesOnStderr(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "journal"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))
	// The port is missing (a warning); the platform is unreachable.
	body := validConfig(t, filepath.Join(dir, "data"), "http://127.0.0.1:1", filepath.Join(dir, "no-such-port"))
	stop := runFor(t, writeFile(t, "config.toml", body), f)
	got := waitFile(t, f.Name(), "serial port unavailable")
	if code := stop(); code != 0 {
		t.Fatalf("run exited %d", code)
	}
	for _, line := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
		switch {
		case strings.Contains(line, "level=WARN") && !strings.HasPrefix(line, "<4>"),
			strings.Contains(line, "level=INFO") && !strings.HasPrefix(line, "<6>"),
			strings.Contains(line, "level=ERROR") && !strings.HasPrefix(line, "<3>"):
			t.Errorf("line without its journald priority: %q", line)
		}
	}
	if !strings.Contains(got, "<4>time=") || !strings.Contains(got, "<6>time=") {
		t.Errorf("no prefixed lines:\n%s", got)
	}
}
