package queue

import (
	"context"
	"path/filepath"
	"testing"
)

// The alerts survive a reopen: states and the outbox in order; a sent
// message is gone; a file without the bucket reads as no alerts.
func TestAlertsDurable(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "queue.db")
	q, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := q.AlertStates(); err != nil || len(st) != 0 {
		t.Fatalf("fresh file: states %v, %v", st, err)
	}
	if out, err := q.AlertOutbox(10); err != nil || len(out) != 0 {
		t.Fatalf("fresh file: outbox %v, %v", out, err)
	}
	if err := q.UpdateAlerts(ctx, AlertUpdate{Put: map[string][]byte{"a": []byte("1"), "b": []byte("2")},
		Send: [][]byte{[]byte("m1"), []byte("m2")}}); err != nil {
		t.Fatal(err)
	}
	if err := q.UpdateAlerts(ctx, AlertUpdate{Delete: []string{"a"}, Send: [][]byte{[]byte("m3")}}); err != nil {
		t.Fatal(err)
	}
	out, err := q.AlertOutbox(10)
	if err != nil || len(out) != 3 {
		t.Fatalf("outbox %v, %v", out, err)
	}
	if err := q.AlertSent(ctx, out[0].Seq); err != nil {
		t.Fatal(err)
	}
	mustEnqueue(t, q, "x") // scans and alerts share the file
	q.Close()

	q = mustOpen(t, path, Options{})
	st, err := q.AlertStates()
	if err != nil || len(st) != 1 || string(st["b"]) != "2" {
		t.Fatalf("states after reopen: %q, %v", st, err)
	}
	out, err = q.AlertOutbox(10)
	if err != nil || len(out) != 2 || string(out[0].Data) != "m2" || string(out[1].Data) != "m3" || out[0].Seq >= out[1].Seq {
		t.Fatalf("outbox after reopen: %+v, %v", out, err)
	}
	if s := mustStats(t, q); s.Pending != 1 {
		t.Fatalf("pending = %d, want 1", s.Pending)
	}
}
