package clock

import (
	"testing"
	"time"
)

func TestFakeFiresInOrder(t *testing.T) {
	f := NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	var got []int
	f.AfterFunc(3*time.Second, func() { got = append(got, 3) })
	f.AfterFunc(time.Second, func() { got = append(got, 1) })
	stopped := f.AfterFunc(2*time.Second, func() { got = append(got, 2) })
	tm := f.NewTimer(5 * time.Second)
	if !stopped.Stop() {
		t.Fatal("Stop of a pending timer reported false")
	}
	f.Advance(4 * time.Second)
	if len(got) != 2 || got[0] != 1 || got[1] != 3 {
		t.Fatalf("fired %v, want [1 3]", got)
	}
	select {
	case <-tm.C():
		t.Fatal("timer fired early")
	default:
	}
	f.Advance(time.Second)
	select {
	case at := <-tm.C():
		if want := time.Date(2026, 1, 1, 0, 0, 5, 0, time.UTC); !at.Equal(want) {
			t.Fatalf("fired at %v, want %v", at, want)
		}
	default:
		t.Fatal("timer did not fire")
	}
}

func TestJumpMovesWallNotBoot(t *testing.T) {
	f := NewFake(time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC))
	id, b0 := f.Boot()
	w0 := f.Now()
	f.Jump(3 * 365 * 24 * time.Hour)
	f.Advance(time.Minute)
	id2, b1 := f.Boot()
	if id != id2 || b1-b0 != time.Minute {
		t.Fatalf("boot clock moved %v (ids %q %q), want 1m", b1-b0, id, id2)
	}
	if d := f.Now().Sub(w0); d != 3*365*24*time.Hour+time.Minute {
		t.Fatalf("wall clock moved %v", d)
	}
	s := NewShifted(nil, -time.Hour)
	if d := time.Since(s.Now()); d < time.Hour-time.Second || d > time.Hour+time.Second {
		t.Fatalf("shifted clock off by %v, want 1h", d)
	}
	s.Jump(time.Hour)
	if d := time.Since(s.Now()); d > time.Second || d < -time.Second {
		t.Fatalf("after the jump off by %v", d)
	}
}

func TestSystemBoot(t *testing.T) {
	id, a := System.Boot()
	time.Sleep(time.Millisecond)
	id2, b := System.Boot()
	if id == "" || id != id2 || b <= a {
		t.Fatalf("boot clock %q %v then %q %v", id, a, id2, b)
	}
}
