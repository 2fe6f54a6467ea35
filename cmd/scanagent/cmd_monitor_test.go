//go:build unix

package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"scanagent/internal/devserver"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"scanagent/internal/queue"
)

// scannerPTY returns a non-blocking pty master (so reads can time out) and
// the slave's path.
func scannerPTY(t *testing.T) (*os.File, string) {
	t.Helper()
	m, s, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	fd, err := syscall.Dup(int(m.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	if err := syscall.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	master := os.NewFile(uintptr(fd), "ptmx")
	t.Cleanup(func() { master.Close() })
	return master, s.Name()
}

// waitOutput polls buf until it holds s.
func waitOutput(t *testing.T, buf *syncBuffer, s string, done <-chan int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.String(), s) {
		select {
		case code := <-done:
			t.Fatalf("monitor exited %d before printing %q:\n%s", code, s, buf.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the output:\n%s", s, buf.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestMonitorCommand(t *testing.T) {
	master, path := scannerPTY(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	cfgPath := writeFile(t, "config.toml", validConfig(t, dataDir, "http://127.0.0.1:1", path))

	for _, raw := range []bool{false, true} {
		args := []string{"-c", cfgPath, "monitor", "--reader", "gate-1"}
		if raw {
			args = append(args, "--raw")
		}
		ctx, cancel := context.WithCancel(context.Background())
		out, errb := &syncBuffer{}, &syncBuffer{}
		done := make(chan int, 1)
		go func() { done <- runMain(ctx, args, out, errb) }()
		waitOutput(t, out, "waiting for scans", done)

		if _, err := master.Write([]byte("2021001,张三,33010219900101123X,1\r\nbad\r\n\x1b[2J\x1b[H,,,\r\n")); err != nil {
			t.Fatal(err)
		}
		waitOutput(t, out, "rejected: delimited: got 1 columns, want 4", done)
		// The agent's verdict on a frame that would have beeped OK before
		// validation, and its escape sequence shown, not sent.
		waitOutput(t, out, "rejected: xgh: holds control character U+001B; name: is empty; idCard: is empty", done)
		if i, c := unsafeChar(out.String()); i >= 0 {
			t.Errorf("monitor wrote control character %U:\n%q", c, out.String())
		}
		// No ack bytes: ack_ok = "06" is configured, but monitor writes nothing.
		master.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if n, err := master.Read(make([]byte, 8)); n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("read %d bytes from the scanner's side (%v), want none", n, err)
		}
		cancel()
		if code := <-done; code != 0 {
			t.Fatalf("monitor exited %d after Ctrl-C; stderr %q", code, errb.String())
		}

		got := out.String()
		wantFrame := `frame (35 bytes): "*******,张三,******************,1"`
		if raw {
			wantFrame = "frame (35 bytes): 2a 2a 2a 2a 2a 2a 2a 2c e5 bc a0 e4 b8 89 2c 2a 2a"
		}
		for _, want := range []string{
			"monitor: reader gate-1, port " + path + ", 9600 baud, framing line, decoder delimited",
			wantFrame,
			`ok: xgh="2021001" name="张三" idCard="330***********123X" userType="1"`,
		} {
			if !strings.Contains(got, want) {
				t.Errorf("raw %v: output lacks %q:\n%s", raw, want, got)
			}
		}
		if strings.Contains(got+errb.String(), "33010219900101123X") || strings.Contains(got, "33 33 30 31 30 32 31 39") {
			t.Errorf("the plaintext ID number was printed:\n%s", got)
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, queueFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("monitor created or touched the queue (%v); it must store nothing", err)
	}
}

func TestMonitorRefusesWhileAgentRuns(t *testing.T) {
	_, path := scannerPTY(t)

	t.Run("queue locked", func(t *testing.T) {
		dataDir := t.TempDir()
		q, err := queue.Open(filepath.Join(dataDir, queueFile), queue.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		cfgPath := writeFile(t, "config.toml", validConfig(t, dataDir, "http://127.0.0.1:1", path))
		code, _, errs := runCLI(t, context.Background(), "-c", cfgPath, "monitor")
		if code != 1 || !strings.Contains(errs, "the agent is running ("+filepath.Join(dataDir, queueFile)+" is locked)") {
			t.Errorf("exit %d, stderr %q; want 1 and the agent is running", code, errs)
		}
	})

	t.Run("admin answers", func(t *testing.T) {
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		defer hs.Close()
		addr := strings.TrimPrefix(hs.URL, "http://")
		body := strings.Replace(validConfig(t, t.TempDir(), "http://127.0.0.1:1", path), `admin_listen = ""`, `admin_listen = "`+addr+`"`, 1)
		cfgPath := writeFile(t, "config.toml", body)
		code, _, errs := runCLI(t, context.Background(), "-c", cfgPath, "monitor")
		if code != 1 || !strings.Contains(errs, "it answers on http://"+addr+"/healthz") || !strings.Contains(errs, "stop it first") {
			t.Errorf("exit %d, stderr %q; want 1 and the agent is running", code, errs)
		}
	})
}

func TestMonitorChoosesReader(t *testing.T) {
	_, path := scannerPTY(t)
	body := validConfig(t, t.TempDir(), "http://127.0.0.1:1", path) + `
[[reader]]
name = "gate-2"
port = "/dev/ttyNOPE"
term_name = "南门闸机"
term_sn = "GATE-0002"
`
	cfgPath := writeFile(t, "config.toml", body)
	code, _, errs := runCLI(t, context.Background(), "-c", cfgPath, "monitor")
	if code != 2 || !strings.Contains(errs, `has 2 readers: choose one with --reader NAME ("gate-1", "gate-2")`) {
		t.Errorf("two readers, no --reader: exit %d, stderr %q", code, errs)
	}
	code, _, errs = runCLI(t, context.Background(), "-c", cfgPath, "monitor", "--reader", "gate-3")
	if code != 2 || !strings.Contains(errs, `no [[reader]] named "gate-3"`) {
		t.Errorf("unknown reader: exit %d, stderr %q", code, errs)
	}
	code, _, errs = runCLI(t, context.Background(), "-c", cfgPath, "monitor", "--reader", "gate-2")
	if code != 1 || !strings.Contains(errs, "/dev/ttyNOPE") || !strings.Contains(errs, "the port does not exist") ||
		!strings.Contains(errs, "fix: plug the scanner in and check its cable; `scanagent ports` lists the ports") {
		t.Errorf("missing port: exit %d, stderr %q", code, errs)
	}
}

// TestMonitorLive: monitor --live shows a running agent's frames and
// verdicts (ID numbers masked) through its socket while the agent keeps
// storing, acknowledging and uploading; Ctrl-C ends it with exit 0.
func TestMonitorLive(t *testing.T) {
	r := newRig(t, devserver.Options{})
	dataDir := filepath.Join(t.TempDir(), "data")
	cfgPath := writeFile(t, "config.toml", validConfig(t, dataDir, r.url, r.slave.Name()))
	logs := startAgent(t, cfgPath)
	waitFor(t, func() bool { return strings.Contains(logs.String(), "serial port connected") })

	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan int, 1)
	errOut := &syncBuffer{}
	go func() { done <- runMain(ctx, []string{"-c", cfgPath, "monitor", "--live"}, out, errOut) }()
	waitFor(t, func() bool {
		return strings.Contains(out.String(), "monitor --live: every reader of the running agent")
	})

	if _, err := r.master.Write([]byte("2021001,张三,33010219900101123X,学生\nbad\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(out.String(), "rejected:") })
	got := out.String()
	for _, want := range []string{
		`ok: xgh="2021001" name="张三" idCard="330***********123X" userType="学生"`,
		`frame (3 bytes): "bad"`,
		"rejected: delimited: got 1 columns, want 4",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "33010219900101123X") {
		t.Errorf("the plaintext ID number reached the output:\n%s", got)
	}
	// The agent went on as usual: the scan is acknowledged and uploaded.
	waitFor(t, func() bool { return len(r.srv.Records()) == 1 })

	cancel()
	if code := <-done; code != 0 {
		t.Errorf("monitor --live exited %d after Ctrl-C; stderr %q", code, errOut.String())
	}
}

// TestMonitorLiveWithoutAgent: --live with no agent running says so and
// what to do.
func TestMonitorLiveWithoutAgent(t *testing.T) {
	cfgPath := writeFile(t, "config.toml", validConfig(t, t.TempDir(), "http://127.0.0.1:1", "/dev/ttyUSB0"))
	code, _, errs := runCLI(t, context.Background(), "-c", cfgPath, "monitor", "--live")
	if code != 1 || !strings.Contains(errs, "monitor --live watches a running agent, and none answers") ||
		!strings.Contains(errs, "run monitor without --live") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}
