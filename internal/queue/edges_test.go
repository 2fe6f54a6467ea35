package queue

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
