//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"scanagent/internal/devserver"
	"scanagent/internal/queue"
)

// The test binary doubles as the scanagent binary: with SCANAGENT_EXEC_MAIN=1
// it runs the command line instead of the tests, so subprocess tests need no
// separate build.
func TestMain(m *testing.M) {
	if os.Getenv("SCANAGENT_EXEC_MAIN") == "1" {
		if os.Getenv("SCANAGENT_TEST_FSIZE0") == "1" { // a full disk, for doctor's test
			signal.Ignore(syscall.SIGXFSZ)
			syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 0, Max: 0})
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

var crashKills = flag.Int("crash.kills", 10, "how many times TestCrashKill9 kills the agent (the long run: 100 or more)")

// agentProc is `scanagent run` in a subprocess.
type agentProc struct {
	t       *testing.T
	cfgPath string
	logPath string
	cmd     *exec.Cmd
}

func (a *agentProc) start() {
	a.t.Helper()
	before := a.connectedCount()
	a.cmd = exec.Command(os.Args[0], "-c", a.cfgPath, "run")
	a.cmd.Env = append(os.Environ(), "SCANAGENT_EXEC_MAIN=1")
	var stderr bytes.Buffer
	a.cmd.Stderr = &stderr
	if err := a.cmd.Start(); err != nil {
		a.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for a.connectedCount() == before {
		if time.Now().After(deadline) {
			a.t.Fatalf("agent did not open the port; stderr:\n%s\nlog:\n%s", stderr.String(), a.log())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (a *agentProc) log() string {
	b, _ := os.ReadFile(a.logPath)
	return string(b)
}

func (a *agentProc) connectedCount() int { return strings.Count(a.log(), "serial port connected") }

func (a *agentProc) kill9() {
	a.cmd.Process.Signal(syscall.SIGKILL)
	a.cmd.Wait()
}

// stop sends SIGTERM and reports how long the agent took to exit.
func (a *agentProc) stop() (time.Duration, error) {
	begin := time.Now()
	a.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- a.cmd.Wait() }()
	select {
	case err := <-done:
		return time.Since(begin), err
	case <-time.After(10 * time.Second):
		a.cmd.Process.Kill()
		return time.Since(begin), fmt.Errorf("did not exit within 10 s of SIGTERM")
	}
}

// TestCrashKill9 plays a scanner against the real agent binary and kill -9s
// it at random moments (while reading, storing, uploading, fetching a token)
// with the platform failing a share of calls. Verdict: every acknowledged
// scan reaches the platform, duplicates stay within two per kill, nothing is
// dead, no plaintext ID number or secret is left in the data dir or the log.
func TestCrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess crash test")
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	r := newRig(t, devserver.Options{FailRate: 0.2})
	srv, hsURL, master, slave := r.srv, r.url, r.master, r.slave

	dir := t.TempDir()
	dataDir, logPath := filepath.Join(dir, "data"), filepath.Join(dir, "agent.log")
	cfg := validConfig(t, dataDir, hsURL, slave.Name())
	adminAddr := freeAddr(t)
	cfg = strings.Replace(cfg, "[agent]\n", fmt.Sprintf("[agent]\nlog_level = \"debug\"\nlog_file = %q\n", logPath), 1)
	cfg = strings.Replace(cfg, `admin_listen = ""`, fmt.Sprintf("admin_listen = %q", adminAddr), 1)
	cfgPath := writeFile(t, "config.toml", cfg)
	a := &agentProc{t: t, cfgPath: cfgPath, logPath: logPath}

	acks := make(chan byte, 64)
	go func() {
		b := make([]byte, 16)
		for {
			n, err := master.Read(b)
			for _, c := range b[:n] {
				acks <- c
			}
			if err != nil {
				return
			}
		}
	}()
	drainAcks := func() (sawOK bool) {
		time.Sleep(20 * time.Millisecond)
		for {
			select {
			case c := <-acks:
				sawOK = sawOK || c == 0x06
			default:
				return sawOK
			}
		}
	}

	a.start()
	acked := map[string]bool{}
	var presented []person
	kills, presentations := 0, 0
	for i := 0; kills < *crashKills; {
		p := demoPerson(i)
		if len(presented) == i {
			presented = append(presented, p)
		}
		frame := p.xgh + "," + p.name + "," + p.id + "," + p.userType + "\n"
		if _, err := master.Write([]byte(frame)); err != nil {
			t.Fatal(err)
		}
		presentations++
		if rng.IntN(6) == 0 {
			time.Sleep(time.Duration(rng.IntN(15000)) * time.Microsecond)
			a.kill9()
			kills++
			if drainAcks() { // the beep came before the crash
				acked[p.xgh] = true
				i++
			}
			// Bytes the dead agent never read are lost, as on a real
			// line; the person presents the card again.
			unix.IoctlSetInt(int(slave.Fd()), unix.TCFLSH, unix.TCIFLUSH)
			a.start()
			continue
		}
		select {
		case c := <-acks:
			if c != 0x06 {
				t.Fatalf("scan %d: ack byte %#x, want 0x06; log:\n%s", i, c, a.log())
			}
			acked[p.xgh] = true
			i++
		case <-time.After(5 * time.Second):
			t.Fatalf("scan %d: no ack from a running agent; log:\n%s", i, a.log())
		}
	}

	// Let the last agent drain the queue, then stop it as the service would.
	waitAll := time.Now().Add(60 * time.Second)
	for {
		got := map[string]bool{}
		for _, r := range srv.Records() {
			got[r.Xgh] = true
		}
		missing := 0
		for x := range acked {
			if !got[x] {
				missing++
			}
		}
		if missing == 0 && pendingZero(adminAddr) {
			break // duplicates of re-presented scans included
		}
		if time.Now().After(waitAll) {
			t.Fatalf("%d acknowledged scans never reached the platform (kills %d)", missing, kills)
		}
		time.Sleep(20 * time.Millisecond)
	}
	took, err := a.stop()
	if err != nil || took > 5*time.Second {
		t.Fatalf("SIGTERM: exit after %v, %v; want a clean exit within 5 s", took, err)
	}

	records := srv.Records()
	duplicates := len(records) - len(uniqueXgh(records))
	t.Logf("scans presented %d, acknowledged %d, kills %d, platform records %d, duplicates %d",
		presentations, len(acked), kills, len(records), duplicates)
	if duplicates > 2*kills {
		t.Fatalf("%d duplicates after %d kills; want at most %d", duplicates, kills, 2*kills)
	}
	code, out, errs := runCLI(t, context.Background(), "-c", cfgPath, "queue", "stats", "--json")
	var s queue.Stats
	if code != 0 || json.Unmarshal([]byte(out), &s) != nil {
		t.Fatalf("queue stats: exit %d, %q %q", code, out, errs)
	}
	if s.Dead != 0 || s.Pending != 0 {
		t.Fatalf("queue stats %+v; want nothing dead or pending", s)
	}
	assertNoLeaks(t, []string{dataDir, logPath}, presented, "demo-secret")
}

func uniqueXgh(recs []devserver.Record) map[string]bool {
	m := map[string]bool{}
	for _, r := range recs {
		m[r.Xgh] = true
	}
	return m
}

// assertNoLeaks fails if any file under roots holds a plaintext ID number or
// a secret.
func assertNoLeaks(t *testing.T, roots []string, people []person, secrets ...string) {
	t.Helper()
	for _, root := range roots {
		filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err // a directory, or the admin socket
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range people {
				if bytes.Contains(b, []byte(p.id)) {
					t.Errorf("%s holds the plaintext ID number of %s", path, p.xgh)
				}
			}
			for _, s := range secrets {
				if bytes.Contains(b, []byte(s)) {
					t.Errorf("%s holds a secret", path)
				}
			}
			return nil
		})
	}
}

// TestSigtermDuringBurst stops the agent with SIGTERM while a scanner is
// pouring frames in: it exits within 5 s and every scan it acknowledged is in
// the queue or at the platform.
func TestSigtermDuringBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess test")
	}
	r := newRig(t, devserver.Options{Latency: 20 * time.Millisecond})
	srv, hsURL, master, slave := r.srv, r.url, r.master, r.slave
	dir := t.TempDir()
	dataDir, logPath := filepath.Join(dir, "data"), filepath.Join(dir, "agent.log")
	cfg := strings.Replace(validConfig(t, dataDir, hsURL, slave.Name()), "[agent]\n", fmt.Sprintf("[agent]\nlog_file = %q\n", logPath), 1)
	cfgPath := writeFile(t, "config.toml", cfg)
	a := &agentProc{t: t, cfgPath: cfgPath, logPath: logPath}
	a.start()

	acked := make(chan int, 1000)
	go func() {
		b := make([]byte, 64)
		for {
			n, err := master.Read(b)
			for _, c := range b[:n] {
				if c == 0x06 {
					acked <- 1
				}
			}
			if err != nil {
				return
			}
		}
	}()
	const burst = 300
	go func() {
		for i := range burst {
			p := demoPerson(i)
			if _, err := master.Write([]byte(p.xgh + "," + p.name + "," + p.id + "," + p.userType + "\n")); err != nil {
				return
			}
		}
	}()
	for len(acked) < burst/3 {
		time.Sleep(time.Millisecond)
	}
	took, err := a.stop()
	if err != nil || took > 5*time.Second {
		t.Fatalf("SIGTERM mid-burst: exit after %v, %v; want a clean exit within 5 s; log:\n%s", took, err, a.log())
	}
	time.Sleep(20 * time.Millisecond) // the last ack bytes in the pty
	nAcked := len(acked)

	code, out, errs := runCLI(t, context.Background(), "-c", cfgPath, "queue", "stats", "--json")
	var s queue.Stats
	if code != 0 || json.Unmarshal([]byte(out), &s) != nil {
		t.Fatalf("queue stats: exit %d, %q %q", code, out, errs)
	}
	// Frames are acknowledged in order, so the first nAcked people are
	// each stored (pending) or delivered.
	if got := int(s.Pending) + srv.Stats().Accepted; got < nAcked {
		t.Fatalf("%d scans acknowledged, only %d pending or delivered", nAcked, got)
	}
	t.Logf("acknowledged %d of %d before SIGTERM; exit took %v; pending %d, delivered %d", nAcked, burst, took, s.Pending, srv.Stats().Accepted)
}

// pendingZero asks the running agent's /healthz whether its queue is empty.
func pendingZero(addr string) bool {
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var h struct{ Pending uint64 }
	return json.NewDecoder(resp.Body).Decode(&h) == nil && h.Pending == 0
}
