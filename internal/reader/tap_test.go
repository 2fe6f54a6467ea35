package reader

import "testing"

// TestTap: watchers get their reader's events, a slow one loses events
// (counted) without blocking, cancel closes the channel, and a nil or idle
// Tap costs nothing.
func TestTap(t *testing.T) {
	var none *Tap
	if none.active() {
		t.Fatal("nil tap active")
	}
	tap := NewTap()
	if tap.active() {
		t.Fatal("tap without watchers active")
	}
	all, cancelAll := tap.Subscribe("", 2)
	gate, cancelGate := tap.Subscribe("gate-1", 10)
	if !tap.active() {
		t.Fatal("tap with watchers not active")
	}
	for i := 0; i < 5; i++ {
		tap.publish("gate-1", Event{Note: "g"})
	}
	tap.publish("till-2", Event{Note: "t"})
	if n := len(gate); n != 5 {
		t.Errorf("gate watcher got %d events, want 5", n)
	}
	if n := len(all); n != 2 {
		t.Errorf("slow watcher holds %d events, want its buffer of 2", n)
	}
	<-all
	<-all
	tap.publish("till-2", Event{Note: "t"})
	if ev := <-all; ev.Dropped != 4 || ev.Reader != "till-2" {
		t.Errorf("after the gap: %+v; want 4 dropped, reader till-2", ev)
	}
	cancelAll()
	cancelAll() // twice is fine
	if _, ok := <-all; ok {
		t.Error("channel open after cancel")
	}
	cancelGate()
	if tap.active() {
		t.Error("tap active after every watcher left")
	}
	if len(gate) != 5 {
		t.Errorf("buffered events lost at cancel")
	}
}
