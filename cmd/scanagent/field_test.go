//go:build unix

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"scanagent/internal/clock"
	"scanagent/internal/config"
	"scanagent/internal/devserver"
	"scanagent/internal/queue"
)

// liveAgent is `scanagent run` in this process, stopped by stop (or at the
// end of the test).
type liveAgent struct {
	logs *syncBuffer
	stop func()
}

// runAgent starts the agent with cfgPath (and clk, nil = the system
// clock) and waits until it has opened the scanner's port.
func runLive(t *testing.T, cfgPath string, clk clock.Clock) *liveAgent {
	t.Helper()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	a, err := newAgent(cfg, newLogger(logs, "info"), clk)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	}
	t.Cleanup(stop)
	waitLong(t, 10*time.Second, func() bool { return strings.Contains(logs.String(), "serial port connected") }, logs)
	return &liveAgent{logs: logs, stop: stop}
}

// waitLong waits for cond, up to d; on failure it shows the log.
func waitLong(t *testing.T, d time.Duration, cond func() bool, logs *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s; log:\n%s", d, logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// scanPeople presents n people's cards on the rig's scanner; every scan
// must be acknowledged as stored.
func scanPeople(t *testing.T, r *rig, acks <-chan byte, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		p := demoPerson(i)
		if ok, err := presentCard(context.Background(), r.master, acks, p.xgh+","+p.name+","+p.id+","+p.userType+"\n"); err != nil || !ok {
			t.Fatalf("scan %d not acknowledged: %v, %v", i, ok, err)
		}
	}
}

func queueStats(t *testing.T, dataDir string) queue.Stats {
	t.Helper()
	q, err := queue.Open(filepath.Join(dataDir, queueFile), queue.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	s, err := q.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// acceptedOnce checks that the platform took each of n people exactly once.
func acceptedOnce(t *testing.T, srv *devserver.Server, n int) {
	t.Helper()
	seen := map[string]int{}
	for _, rec := range srv.Records() {
		seen[rec.Xgh]++
	}
	for i := range n {
		if c := seen[demoPerson(i).xgh]; c != 1 {
			t.Errorf("person %d accepted %d times, want once", i, c)
		}
	}
	if len(seen) != n {
		t.Errorf("platform took %d people, want %d", len(seen), n)
	}
}

// TestMistypedAppIDHolds: with a mistyped app_id the platform refuses every
// record (errorFields appId, idCard). At most hold_after go dead, the rest
// wait pending; the log and doctor name app_id. After the fix and a
// restart, every scan arrives once (the few dead ones were moved back when
// the hold began).
func TestMistypedAppIDHolds(t *testing.T) {
	r := newRig(t, devserver.Options{})
	dataDir := filepath.Join(t.TempDir(), "data")
	good := validConfig(t, dataDir, r.url, r.slave.Name())
	bad := strings.Replace(good, `app_id = "01"`, `app_id = "02"`, 1)
	badPath := writeFile(t, "bad.toml", bad)
	a := runLive(t, badPath, nil)
	acks := readAcks(r.master)
	const n = 8
	scanPeople(t, r, acks, 0, n)
	waitLong(t, 10*time.Second, func() bool { return strings.Contains(a.logs.String(), "uploads held") }, a.logs)
	// doctor asks the running agent and names the key at fault.
	failed := doctorJSON(t, badPath)
	wantFailure(t, failed, "refused for the fields", "[platform] app_id")
	// The probes go on; nothing more dies.
	time.Sleep(200 * time.Millisecond)
	a.stop()
	s := queueStats(t, dataDir)
	if s.Dead > 3 || s.Pending+s.Dead != n {
		t.Fatalf("queue: %d pending, %d dead; want at most hold_after (3) dead and the rest pending\n%s", s.Pending, s.Dead, a.logs.String())
	}
	log := a.logs.String()
	if !strings.Contains(log, "app_id") || !strings.Contains(log, "state=held") || !strings.Contains(log, "fix=") {
		t.Fatalf("the log does not name app_id with a fix:\n%s", log)
	}
	if got := r.srv.Stats().Accepted; got != 0 {
		t.Fatalf("platform accepted %d with a wrong app_id", got)
	}

	// The fixed configuration, restarted.
	goodPath := writeFile(t, "good.toml", good)
	a = runLive(t, goodPath, nil)
	waitLong(t, 10*time.Second, func() bool { return r.srv.Stats().Accepted >= n }, a.logs)
	a.stop()
	acceptedOnce(t, r.srv, n)
	if s := queueStats(t, dataDir); s.Pending != 0 || s.Dead != 0 {
		t.Fatalf("after the fix: %d pending, %d dead", s.Pending, s.Dead)
	}
}

// TestNotFoundKillsNothing: a 404 from the scan endpoint (a mistyped
// scan_path, a platform being redeployed) holds the queue; nothing dies,
// and uploading resumes by itself when the endpoint is back.
func TestNotFoundKillsNothing(t *testing.T) {
	r := newRig(t, devserver.Options{})
	r.srv.SetMode(devserver.ModeNotFound)
	dataDir := filepath.Join(t.TempDir(), "data")
	cfgPath := writeFile(t, "c.toml", strings.Replace(validConfig(t, dataDir, r.url, r.slave.Name()), `retry_max = "50ms"`, `retry_max = "100ms"`, 1))
	a := runLive(t, cfgPath, nil)
	acks := readAcks(r.master)
	const n = 5
	scanPeople(t, r, acks, 0, n)
	waitLong(t, 10*time.Second, func() bool { return strings.Contains(a.logs.String(), "uploads held") }, a.logs)
	waitLong(t, 10*time.Second, func() bool { return r.srv.Stats().ScanCalls >= n+3 }, a.logs) // a few probes
	log := a.logs.String()
	if !strings.Contains(log, "scan_path") || strings.Contains(log, "moved to dead") {
		t.Fatalf("a 404 should hold, name scan_path and kill nothing:\n%s", log)
	}
	r.srv.SetMode(devserver.ModeOK)
	waitLong(t, 10*time.Second, func() bool { return r.srv.Stats().Accepted >= n }, a.logs)
	a.stop()
	acceptedOnce(t, r.srv, n)
	if s := queueStats(t, dataDir); s.Dead != 0 || s.Pending != 0 {
		t.Fatalf("%d pending, %d dead; want none", s.Pending, s.Dead)
	}
	if !strings.Contains(a.logs.String(), "uploads resumed") {
		t.Errorf("no line says uploads resumed:\n%s", a.logs.String())
	}
}

// TestClockSkewNamed: a terminal clock 3 years behind the platform's is
// named by the running agent's log, its /healthz state and doctor, each
// with the fix.
func TestClockSkewNamed(t *testing.T) {
	r := newRig(t, devserver.Options{})
	dataDir := filepath.Join(t.TempDir(), "data")
	cfgPath := writeFile(t, "c.toml", validConfig(t, dataDir, r.url, r.slave.Name()))
	const years3 = 3 * 365 * 24 * time.Hour

	// doctor, agent stopped: the platform's Date is 3 years ahead.
	r.srv.SetDateShift(years3)
	code, out, _ := cli(t, cfgPath, "doctor", "--json")
	if code != 1 {
		t.Fatalf("doctor exit %d, want 1\n%s", code, out)
	}
	var doc struct{ Checks []checkResult }
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range doc.Checks {
		if c.Check == "clock" && c.Status == "fail" && strings.Contains(c.Detail, "behind the platform") && strings.Contains(c.Fix, "time sync") {
			found = true
		}
	}
	if !found {
		t.Fatalf("doctor does not name the clock:\n%s", out)
	}

	// The running agent: its own clock 3 years behind a right platform.
	r.srv.SetDateShift(0)
	a := runLive(t, cfgPath, clock.NewShifted(nil, -years3))
	acks := readAcks(r.master)
	scanPeople(t, r, acks, 0, 1)
	waitLong(t, 10*time.Second, func() bool { return strings.Contains(a.logs.String(), `state="clock skewed"`) }, a.logs)
	log := a.logs.String()
	if !strings.Contains(log, "behind the platform") || !strings.Contains(log, "fix=") || !strings.Contains(log, "time sync") {
		t.Fatalf("the log does not name the clock with its fix:\n%s", log)
	}
	// The scan, stamped 3 years ago by the wrong clock, goes out with the
	// platform's date.
	waitLong(t, 10*time.Second, func() bool { return r.srv.Stats().Accepted == 1 }, a.logs)
	checkScanDates(t, r.srv, time.Now(), time.Minute)
}

// checkScanDates: every record's scanDate is within tol of want.
func checkScanDates(t *testing.T, srv *devserver.Server, want time.Time, tol time.Duration) {
	t.Helper()
	loc, _ := time.LoadLocation("Asia/Shanghai")
	for _, rec := range srv.Records() {
		got, err := time.ParseInLocation(devserver.ScanDateFmt, rec.ScanDate, loc)
		if err != nil {
			t.Fatal(err)
		}
		if d := got.Sub(want); d > tol || d < -tol {
			t.Errorf("record %s: scanDate %s, want about %s", rec.Xgh, rec.ScanDate, want.In(loc).Format(devserver.ScanDateFmt))
		}
	}
}

// TestClockJumpCorrectsScanDates: a terminal boots with its clock 3 years
// behind while the platform is down; scans are stamped with the wrong
// date; NTP then sets the clock right (a jump of 3 years) and the platform
// returns: the scans stamped before the jump are sent with corrected
// dates, and keep their local stamp for inspection.
func TestClockJumpCorrectsScanDates(t *testing.T) {
	r := newRig(t, devserver.Options{})
	r.srv.SetMode(devserver.ModeDown)
	dataDir := filepath.Join(t.TempDir(), "data")
	cfg := strings.Replace(validConfig(t, dataDir, r.url, r.slave.Name()), "[upload]", "[queue]\nkeep_delivered = 10\n\n[upload]", 1)
	cfgPath := writeFile(t, "c.toml", cfg)
	const years3 = 3 * 365 * 24 * time.Hour
	clk := clock.NewShifted(nil, -years3)
	a := runLive(t, cfgPath, clk)
	acks := readAcks(r.master)
	const n = 3
	scanPeople(t, r, acks, 0, n)
	clk.Jump(years3)
	r.srv.SetMode(devserver.ModeOK)
	waitLong(t, 10*time.Second, func() bool { return r.srv.Stats().Accepted >= n }, a.logs)
	checkScanDates(t, r.srv, time.Now(), time.Minute)
	if !strings.Contains(a.logs.String(), "scan time corrected") {
		t.Errorf("no log line says the scan time was corrected:\n%s", a.logs.String())
	}
	a.stop()
	acceptedOnce(t, r.srv, n)
	// queue show keeps the local stamp and shows the time sent.
	_, out, _ := cli(t, cfgPath, "queue", "show", "1")
	year := func(d time.Duration) string { return fmt.Sprint(time.Now().Add(d).Year()) }
	if !strings.Contains(out, "scanTime:") || !strings.Contains(out, year(-years3)) || !strings.Contains(out, "sentScanTime:") ||
		!strings.Contains(out, year(0)) || !strings.Contains(out, "corrected") {
		t.Errorf("queue show does not show both times:\n%s", out)
	}
}

// TestTokenOutageRecovery: after an outage in which token fetches failed,
// the first upload goes out within retry_max (+1 s) of the platform's
// return: the token fetch follows the upload backoff, not a timer of its
// own.
func TestTokenOutageRecovery(t *testing.T) {
	r := newRig(t, devserver.Options{})
	r.srv.SetMode(devserver.ModeDown)
	dataDir := filepath.Join(t.TempDir(), "data")
	const retryMax = 500 * time.Millisecond
	cfg := strings.Replace(validConfig(t, dataDir, r.url, r.slave.Name()), `retry_max = "50ms"`, fmt.Sprintf("retry_max = %q", retryMax.String()), 1)
	a := runLive(t, writeFile(t, "c.toml", cfg), nil)
	acks := readAcks(r.master)
	scanPeople(t, r, acks, 0, 1)
	// Several failed token fetches.
	waitLong(t, 10*time.Second, func() bool { return r.srv.Stats().Intercepted >= 3 }, a.logs)
	if !strings.Contains(a.logs.String(), "token request") {
		t.Fatalf("the outage did not fail a token fetch:\n%s", a.logs.String())
	}
	back := time.Now()
	r.srv.SetMode(devserver.ModeOK)
	waitLong(t, 10*time.Second, func() bool { return r.srv.Stats().Accepted == 1 }, a.logs)
	if took := time.Since(back); took > retryMax+time.Second {
		t.Fatalf("first upload %s after the platform returned; want within retry_max (%s) + 1 s", took, retryMax)
	}
}
