package logs

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// Under the journal every line starts with its priority, so that
// journalctl -p err selects the errors; attributes and groups survive.
func TestJournalPriorities(t *testing.T) {
	var b bytes.Buffer
	log := New(&b, Options{Level: slog.LevelDebug, Journal: true}).With("component", "upload")
	log.Debug("d")
	log.Info("i")
	log.Warn("w")
	log.Error("e", "err", "boom")
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	want := []string{"<7>", "<6>", "<4>", "<3>"}
	if len(lines) != 4 {
		t.Fatalf("lines:\n%s", b.String())
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, want[i]+"time=") || !strings.Contains(l, "component=upload") {
			t.Errorf("line %d %q: want prefix %s and the component", i, l, want[i])
		}
	}
	if !strings.Contains(lines[3], "err=boom") {
		t.Errorf("error line lost its attribute: %q", lines[3])
	}
}

// json: one object a line, the journal prefix before it; the level is
// honoured.
func TestJSON(t *testing.T) {
	var b bytes.Buffer
	log := New(&b, Options{Format: "json", Journal: true})
	log.Debug("hidden")
	log.WithGroup("g").Warn("careful", "n", 3)
	line := strings.TrimSuffix(b.String(), "\n")
	rest, ok := strings.CutPrefix(line, "<4>")
	if !ok || strings.Contains(line, "\n") {
		t.Fatalf("output %q", b.String())
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(rest), &m); err != nil || m["msg"] != "careful" || m["level"] != "WARN" {
		t.Fatalf("%q: %v %v", rest, m, err)
	}
	if g, _ := m["g"].(map[string]any); g["n"] != float64(3) {
		t.Fatalf("group lost: %v", m)
	}
	var plain bytes.Buffer
	New(&plain, Options{Format: "json"}).Info("x")
	if !strings.HasPrefix(plain.String(), "{") {
		t.Fatalf("without the journal: %q", plain.String())
	}
}

type sink struct {
	mu   sync.Mutex
	msgs []string
}

func (s *sink) Warning(v ...any) error { return s.add("W ", v) }
func (s *sink) Error(v ...any) error   { return s.add("E ", v) }
func (s *sink) add(p string, v []any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, p+v[0].(string))
	return nil
}

// A Windows service copies warnings and errors to the Event Log, and only
// those; the log file still gets everything.
func TestEventLogCopy(t *testing.T) {
	var b bytes.Buffer
	ev := &sink{}
	log := New(&b, Options{Events: ev}).With("reader", "gate-1")
	log.Info("connected")
	log.Warn("port lost", "retry", "2s")
	log.Error("queue write failed")
	if n := strings.Count(b.String(), "\n"); n != 3 {
		t.Fatalf("file got %d lines:\n%s", n, b.String())
	}
	if len(ev.msgs) != 2 || !strings.HasPrefix(ev.msgs[0], "W level=WARN msg=\"port lost\" reader=gate-1 retry=2s") ||
		!strings.HasPrefix(ev.msgs[1], "E level=ERROR") || strings.Contains(ev.msgs[0], "time=") {
		t.Fatalf("event log: %q", ev.msgs)
	}
}
