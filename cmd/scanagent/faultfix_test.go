//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"scanagent/internal/devserver"
)

// Each fault a technician meets in the field, staged for real: doctor
// names the cause and the fix, and so does the running agent's log where
// the agent meets it. (Serial port faults: reader.DiagnosePort's tests;
// framing and baud: the reader's TestRunLogs*; the clock:
// TestClockSkewNamed; a systemic hold: TestMistypedAppIDHolds.)

// skipChildInShort skips a test that runs scanagent in a child process
// under -short (the arm64 run under qemu cannot exec the test binary).
func skipChildInShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs scanagent in a child process; -short skips subprocess tests")
	}
}

// doctorJSON runs doctor --json, in this process or (env set) in a child
// process, and returns its failed checks.
func doctorJSON(t *testing.T, cfgPath string, env ...string) []checkResult {
	t.Helper()
	var out string
	if len(env) == 0 {
		_, out, _ = cli(t, cfgPath, "doctor", "--json")
	} else {
		skipChildInShort(t)
		cmd := exec.Command(os.Args[0], "-c", cfgPath, "doctor", "--json")
		cmd.Env = append(append(os.Environ(), "SCANAGENT_EXEC_MAIN=1"), env...)
		var b bytes.Buffer
		cmd.Stdout = &b
		cmd.Run()
		out = b.String()
	}
	var doc struct{ Checks []checkResult }
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("doctor --json: %v\n%s", err, out)
	}
	var failed []checkResult
	for _, c := range doc.Checks {
		if c.Status == "fail" {
			failed = append(failed, c)
		}
	}
	return failed
}

// wantFailure asserts a failed check whose detail holds cause and whose fix
// holds fix.
func wantFailure(t *testing.T, failed []checkResult, cause, fix string) {
	t.Helper()
	for _, c := range failed {
		if strings.Contains(c.Detail, cause) && strings.Contains(c.Fix, fix) {
			t.Logf("doctor: %s\n    fix: %s", c.Detail, c.Fix)
			return
		}
	}
	t.Errorf("doctor: no failed check with %q and fix %q in %+v", cause, fix, failed)
}

// agentLog runs the agent (a child process when env is set, as proxy
// variables are read once per process) until its log holds want, and
// returns the log.
func agentLog(t *testing.T, cfg, want string, env ...string) string {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "agent.log")
	cfg = strings.Replace(cfg, `admin_listen = ""`, "admin_listen = \"\"\nlog_file = "+quote(logPath), 1)
	cfgPath := writeFile(t, "agent.toml", cfg)
	read := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	if len(env) == 0 {
		a := runLive(t, cfgPath, nil)
		waitLong(t, 10*time.Second, func() bool { return strings.Contains(a.logs.String(), want) }, a.logs)
		a.stop()
		return a.logs.String()
	}
	skipChildInShort(t)
	cmd := exec.Command(os.Args[0], "-c", cfgPath, "run")
	cmd.Env = append(append(os.Environ(), "SCANAGENT_EXEC_MAIN=1"), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(read(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the agent's log lacks %q:\n%s", want, read())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return read()
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

// wantLog asserts the log line naming cause carries fix.
func wantLog(t *testing.T, log, cause, fix string) {
	t.Helper()
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, cause) && strings.Contains(line, "fix=") && strings.Contains(line, fix) {
			t.Logf("log: %s", line)
			return
		}
	}
	t.Errorf("no log line with %q and fix %q:\n%s", cause, fix, log)
}

// scanForFault makes the agent upload something: one scan on the rig's port.
func scanForFault(t *testing.T, r *rig) {
	t.Helper()
	go func() {
		p := demoPerson(0)
		r.master.Write([]byte(p.xgh + "," + p.name + "," + p.id + "," + p.userType + "\n"))
	}()
}

func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestFaultNothingListens(t *testing.T) {
	r := newRig(t, devserver.Options{})
	cfg := validConfig(t, filepath.Join(t.TempDir(), "data"), "http://"+closedAddr(t), r.slave.Name())
	wantFailure(t, doctorJSON(t, writeFile(t, "c.toml", cfg)), "connection refused", "nothing listens there")
	scanForFault(t, r)
	wantLog(t, agentLog(t, cfg, "platform unreachable"), "connection refused", "nothing listens there")
}

func TestFaultDNS(t *testing.T) {
	r := newRig(t, devserver.Options{})
	cfg := validConfig(t, filepath.Join(t.TempDir(), "data"), "http://platform.scanagent-test.invalid", r.slave.Name())
	wantFailure(t, doctorJSON(t, writeFile(t, "c.toml", cfg)), "DNS platform.scanagent-test.invalid", "DNS server")
	scanForFault(t, r)
	wantLog(t, agentLog(t, cfg, "platform unreachable"), "DNS lookup failed", "DNS server")
}

func TestFaultCaptivePortal(t *testing.T) {
	r := newRig(t, devserver.Options{})
	r.srv.SetMode(devserver.ModeHTML)
	cfg := validConfig(t, filepath.Join(t.TempDir(), "data"), r.url, r.slave.Name())
	wantFailure(t, doctorJSON(t, writeFile(t, "c.toml", cfg)), "not a token answer", "captive portal")
	scanForFault(t, r)
	wantLog(t, agentLog(t, cfg, "platform unreachable"), "not the platform's answer", "captive portal")
}

func TestFaultIntranetCA(t *testing.T) {
	r := newRig(t, devserver.Options{})
	hs := httptest.NewTLSServer(r.srv.Handler())
	defer hs.Close()
	cfg := validConfig(t, filepath.Join(t.TempDir(), "data"), hs.URL, r.slave.Name())
	wantFailure(t, doctorJSON(t, writeFile(t, "c.toml", cfg)), "TLS 127.0.0.1", "ca_file")
	scanForFault(t, r)
	wantLog(t, agentLog(t, cfg, "platform unreachable"), "unknown CA", "ca_file")
}

func TestFaultWrongSecret(t *testing.T) {
	r := newRig(t, devserver.Options{})
	cfg := strings.Replace(validConfig(t, filepath.Join(t.TempDir(), "data"), r.url, r.slave.Name()), `"demo-secret"`, `"wrong-secret"`, 1)
	wantFailure(t, doctorJSON(t, writeFile(t, "c.toml", cfg)), "refused the client credentials", "client_secret")
	scanForFault(t, r)
	log := agentLog(t, cfg, "credentials refused")
	wantLog(t, log, "credentials refused", "client_secret")
	if strings.Contains(log, "wrong-secret") {
		t.Fatal("the log shows the secret")
	}
}

// platformViaProxy: base_url names a host only the proxy knows (the
// loopback is never proxied), the proxy forwards it to the devserver.
func platformViaProxy(t *testing.T, r *rig) (baseURL string, proxy *devserver.Proxy, proxyURL string) {
	target, _ := url.Parse(r.url)
	proxy = &devserver.Proxy{Target: target}
	ps := httptest.NewServer(proxy)
	t.Cleanup(ps.Close)
	return "http://platform.scanagent-test.invalid", proxy, ps.URL
}

func TestFaultProxyDead(t *testing.T) {
	r := newRig(t, devserver.Options{})
	base, _, _ := platformViaProxy(t, r)
	cfg := validConfig(t, filepath.Join(t.TempDir(), "data"), base, r.slave.Name())
	env := []string{"HTTP_PROXY=http://" + closedAddr(t), "HTTPS_PROXY=", "NO_PROXY="}
	wantFailure(t, doctorJSON(t, writeFile(t, "c.toml", cfg), env...), "connection refused", "HTTPS_PROXY")
	scanForFault(t, r)
	wantLog(t, agentLog(t, cfg, "platform unreachable", env...), "the proxy does not answer", "NO_PROXY")
}

func TestFaultProxyMisrouted(t *testing.T) {
	r := newRig(t, devserver.Options{})
	base, proxy, proxyURL := platformViaProxy(t, r)
	cfg := validConfig(t, filepath.Join(t.TempDir(), "data"), base, r.slave.Name())
	env := []string{"HTTP_PROXY=" + proxyURL, "HTTPS_PROXY=", "NO_PROXY="}
	// Through a working proxy every check passes.
	if failed := doctorJSON(t, writeFile(t, "ok.toml", cfg), env...); len(failed) != 0 || proxy.Calls.Load() == 0 {
		t.Fatalf("doctor through a working proxy (%d calls): %+v", proxy.Calls.Load(), failed)
	}
	proxy.Refuse.Store(true)
	wantFailure(t, doctorJSON(t, writeFile(t, "c.toml", cfg), env...), "answered 502", "NO_PROXY")
	scanForFault(t, r)
	wantLog(t, agentLog(t, cfg, "platform unreachable", env...), "through the proxy", "NO_PROXY")
}

func TestFaultDiskFull(t *testing.T) {
	r := newRig(t, devserver.Options{})
	cfg := validConfig(t, filepath.Join(t.TempDir(), "data"), r.url, r.slave.Name())
	wantFailure(t, doctorJSON(t, writeFile(t, "c.toml", cfg), "SCANAGENT_TEST_FSIZE0=1"), "writable", "disk is full")
}
