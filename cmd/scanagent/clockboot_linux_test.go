package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"scanagent/internal/clock"
	"scanagent/internal/devserver"
)

// TestClockCorrectedAcrossRestart: scans stamped by an agent whose clock
// was 3 years behind, while the platform was down, are sent with their
// real dates by the next agent of the same boot, whose clock is right:
// the boot clock (CLOCK_BOOTTIME, with the kernel's boot ID) outlives the
// process.
func TestClockCorrectedAcrossRestart(t *testing.T) {
	r := newRig(t, devserver.Options{})
	r.srv.SetMode(devserver.ModeDown)
	dataDir := filepath.Join(t.TempDir(), "data")
	cfgPath := writeFile(t, "c.toml", validConfig(t, dataDir, r.url, r.slave.Name()))
	const years3 = 3 * 365 * 24 * time.Hour
	a := runLive(t, cfgPath, clock.NewShifted(nil, -years3))
	acks := readAcks(r.master)
	const n = 2
	scanPeople(t, r, acks, 0, n)
	a.stop()
	if s := queueStats(t, dataDir); s.Pending != n {
		t.Fatalf("%d pending, want %d", s.Pending, n)
	}
	r.srv.SetMode(devserver.ModeOK)
	a = runLive(t, cfgPath, nil)
	waitLong(t, 10*time.Second, func() bool { return r.srv.Stats().Accepted >= n }, a.logs)
	a.stop()
	checkScanDates(t, r.srv, time.Now(), time.Minute)
	acceptedOnce(t, r.srv, n)
	if !strings.Contains(a.logs.String(), "scan time corrected") {
		t.Errorf("no correction logged:\n%s", a.logs.String())
	}
}
