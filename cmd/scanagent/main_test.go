package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"scanagent/internal/devserver"
	"scanagent/internal/queue"
)

func runCLI(t *testing.T, ctx context.Context, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runMain(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestDemo is the end-to-end test: devserver, a scanner on a real pty, the
// agent, an outage; the demo itself checks every record's fields and that
// idCard decrypts to the scanned ID number.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	o := demoOptions{Scans: 15, Interval: 20 * time.Millisecond, OutageAt: 5, Outage: 500 * time.Millisecond, Out: &out}
	tl, err := runDemo(context.Background(), o)
	if err != nil {
		t.Fatalf("runDemo: %v\n%s", err, out.String())
	}
	if !tl.ok(o.Scans) {
		t.Fatalf("tally %+v; want every scan once\n%s", tl, out.String())
	}
	if !strings.Contains(out.String(), "platform unreachable") || !strings.Contains(out.String(), "reachable again") {
		t.Errorf("the outage is not visible in the demo output:\n%s", out.String())
	}
	// The backlog alert raised during the outage, and its clearing, are
	// sent once the platform is back.
	if tl.Alerts != 2 || !strings.Contains(out.String(), "积压") || !strings.Contains(out.String(), "【扫码终端恢复】") {
		t.Errorf("alerts = %d, want the backlog's start and clearing shown:\n%s", tl.Alerts, out.String())
	}
	for _, p := range []person{demoPerson(0), demoPerson(7)} {
		if strings.Contains(out.String(), p.id) {
			t.Errorf("plaintext ID number %s in the demo output", p.id)
		}
	}
}

func TestChineseIDCheckDigit(t *testing.T) {
	// A published example: 11010519491231002X.
	if got := chineseID("11010519491231002"); got != "11010519491231002X" {
		t.Fatalf("got %s, want 11010519491231002X", got)
	}
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func validConfig(t *testing.T, dataDir, baseURL, port string) string {
	return fmt.Sprintf(`[agent]
data_dir = %q
admin_listen = ""

[platform]
base_url = %q
client_id = "demo-client"
client_secret = "demo-secret"
app_id = "01"

[upload]
retry_initial = "10ms"
retry_max = "50ms"

[[reader]]
name = "gate-1"
port = %q
term_name = "北门闸机"
term_sn = "GATE-0001"
ack_ok = "06"
`, dataDir, baseURL, port)
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, "good.toml", validConfig(t, dir, "http://127.0.0.1:1", "/dev/ttyUSB0"))
	code, out, errs := runCLI(t, context.Background(), "--config", good, "config", "check")
	if code != 0 || strings.TrimSpace(out) != "ok" {
		t.Fatalf("valid config: exit %d, stdout %q, stderr %q; want 0 and ok", code, out, errs)
	}

	bad := strings.Replace(validConfig(t, dir, "http://127.0.0.1:1", "/dev/ttyUSB0"), "retry_max", "rety_max", 1)
	bad = strings.Replace(bad, `term_sn = "GATE-0001"`, `term_sn = "GATE-0001"`+"\nbuad = 9600", 1)
	path := writeFile(t, "bad.toml", bad)
	code, _, errs = runCLI(t, context.Background(), "config", "check", "-c", path)
	if code != 2 {
		t.Fatalf("exit %d, want 2; stderr %q", code, errs)
	}
	for _, want := range []string{
		regexp.QuoteMeta(path) + `:13:1: .*rety_max`,
		regexp.QuoteMeta(path) + `:20:1: .*buad`,
	} {
		if !regexp.MustCompile(want).MatchString(errs) {
			t.Errorf("stderr %q does not match %q", errs, want)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(errs), "\n") {
		if !strings.HasPrefix(line, "scanagent: ") {
			t.Errorf("error line %q does not start with scanagent:", line)
		}
	}
}

func TestConfigExampleIsTheFile(t *testing.T) {
	code, out, _ := runCLI(t, context.Background(), "config", "example")
	want, err := os.ReadFile("../../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 || out != string(want) {
		t.Fatalf("config example (exit %d) differs from config.example.toml", code)
	}
}

func TestEncrypt(t *testing.T) {
	code, out, errs := runCLI(t, context.Background(), "encrypt", "--app-id", "01", "33010219900101123X")
	if code != 0 || strings.TrimSpace(out) != "GGX7LbvctIvkW/1lTUmQr2Od6uzbfHL8iBlSg+FOM78=" {
		t.Fatalf("exit %d, out %q, err %q", code, out, errs)
	}
	if code, _, _ := runCLI(t, context.Background(), "encrypt", "33010219900101123X"); code != 2 {
		t.Fatalf("without --app-id: exit %d, want 2", code)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"nonsense"}, {"queue"}, {"config", "frobnicate"}, {"version", "--bogus"}} {
		if code, _, errs := runCLI(t, context.Background(), args...); code != 2 || !strings.HasPrefix(errs, "scanagent: ") {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a scanagent: line", args, code, errs)
		}
	}
	if code, out, _ := runCLI(t, context.Background(), "version"); code != 0 || !strings.Contains(out, "go:") {
		t.Errorf("version: exit %d, out %q", code, out)
	}
}

// TestRunCommand runs `scanagent run` with a config file against the
// devserver and a pty, stops it as SIGTERM would, then reads the queue with
// `queue stats`.
func TestRunCommand(t *testing.T) {
	r := newRig(t, devserver.Options{})
	srv, hsURL, master, slave := r.srv, r.url, r.master, r.slave
	dataDir := filepath.Join(t.TempDir(), "data")
	cfgPath := writeFile(t, "config.toml", validConfig(t, dataDir, hsURL, slave.Name()))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	errb := &syncBuffer{}
	go func() { done <- runMain(ctx, []string{"-c", cfgPath, "run"}, &bytes.Buffer{}, errb) }()
	// Frames written before the agent opens the port (raw mode) would be
	// echoed back by the terminal line discipline.
	for !strings.Contains(errb.String(), "serial port connected") {
		select {
		case code := <-done:
			t.Fatalf("run exited %d early; log:\n%s", code, errb.String())
		case <-time.After(5 * time.Millisecond):
		}
	}

	acks := make(chan byte, 8)
	go func() {
		b := make([]byte, 1)
		for {
			if _, err := master.Read(b); err != nil {
				return
			}
			acks <- b[0]
		}
	}()
	for i := range 3 {
		p := demoPerson(i)
		ok, err := presentCard(ctx, master, acks, p.xgh+","+p.name+","+p.id+","+p.userType+"\n")
		if err != nil || !ok {
			t.Fatalf("scan %d: acked %v, %v; log:\n%s", i, ok, err, errb.String())
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for srv.Stats().Accepted < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("run exited %d; log:\n%s", code, errb.String())
	}
	recs := srv.Records()
	// Uploads run two at a time: the platform may receive them in any order.
	first := -1
	for i, r := range recs {
		if r.Xgh == demoPerson(0).xgh {
			first = i
		}
	}
	if len(recs) != 3 || first < 0 || recs[first].TermName != "北门闸机" || recs[first].TermSn != "GATE-0001" || recs[first].IDCardPlain != demoPerson(0).id {
		t.Fatalf("platform records = %+v", recs)
	}
	if strings.Contains(errb.String(), demoPerson(0).id) || strings.Contains(errb.String(), "demo-secret") {
		t.Fatalf("log leaks an ID number or the secret:\n%s", errb.String())
	}

	code, out, errs := runCLI(t, context.Background(), "-c", cfgPath, "queue", "stats", "--json")
	var s queue.Stats
	if code != 0 || json.Unmarshal([]byte(out), &s) != nil || s.Delivered != 3 || s.Pending != 0 {
		t.Fatalf("queue stats: exit %d, out %q, err %q", code, out, errs)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// rig is the platform emulator on a real HTTP server and a pseudo-terminal
// whose device the agent opens as its serial port.
type rig struct {
	srv           *devserver.Server
	url           string
	master, slave *os.File
}

// newRig starts both, with the demo credentials and opts' faults; they are
// closed when the test ends.
func newRig(t *testing.T, opts devserver.Options) *rig {
	t.Helper()
	opts.AppID, opts.ClientID, opts.ClientSecret = "01", "demo-client", "demo-secret"
	srv, err := devserver.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Close(); slave.Close() })
	return &rig{srv: srv, url: hs.URL, master: master, slave: slave}
}
