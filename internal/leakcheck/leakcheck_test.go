package leakcheck

import (
	"strings"
	"testing"
)

func TestLeftoverFindsANewGoroutine(t *testing.T) {
	before := Snapshot()
	stop := make(chan struct{})
	started := make(chan struct{})
	go func() { close(started); <-stop }()
	<-started
	left := Leftover(before)
	if len(left) != 1 || !strings.Contains(left[0], "TestLeftoverFindsANewGoroutine") {
		t.Fatalf("leftover: %q", left)
	}
	close(stop)
}
