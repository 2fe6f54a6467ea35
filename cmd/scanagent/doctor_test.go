package main

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"scanagent/internal/devserver"
	"scanagent/internal/queue"
)

func TestDoctor(t *testing.T) {
	r := newRig(t, devserver.Options{})
	srv, hsURL, slave := r.srv, r.url, r.slave
	dataDir := filepath.Join(t.TempDir(), "data")

	good := writeFile(t, "good.toml", validConfig(t, dataDir, hsURL, slave.Name()))
	code, out, errs := runCLI(t, context.Background(), "-c", good, "doctor")
	if code != 0 || strings.Contains(out, "✗") || !strings.Contains(out, "all checks passed") {
		t.Fatalf("doctor on a good setup: exit %d\n%s%s", code, out, errs)
	}
	for _, want := range []string{"✓ config", "✓ data dir", "opens (" + slave.Name() + ")", "✓ DNS", "✓ TCP", "✓ token obtained"} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}
	if s := srv.Stats(); s.ScanCalls != 0 || s.TokenFetches != 1 {
		t.Fatalf("doctor made %d scan calls and %d token fetches; want none and one", s.ScanCalls, s.TokenFetches)
	}
	q, err := queue.Open(filepath.Join(dataDir, queueFile), queue.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := q.LoadToken()
	q.Close()
	if tok.AccessToken == "" {
		t.Fatalf("the token doctor fetched was not kept for the agent")
	}
	if strings.Contains(out, tok.AccessToken) || strings.Contains(out, "demo-secret") {
		t.Fatalf("doctor output leaks a secret:\n%s", out)
	}

	bad := strings.Replace(validConfig(t, dataDir, hsURL, filepath.Join(t.TempDir(), "ttyNOPE")), `"demo-secret"`, `"wrong-secret"`, 1)
	code, out, _ = runCLI(t, context.Background(), "-c", writeFile(t, "bad.toml", bad), "doctor")
	if code != 1 {
		t.Fatalf("doctor with a wrong secret and a missing port: exit %d, want 1\n%s", code, out)
	}
	for _, want := range []string{"✗ reader gate-1 port", "✗ token", "client_id / client_secret", "2 check(s) failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "wrong-secret") {
		t.Fatalf("doctor output shows the secret:\n%s", out)
	}
}

// TestDoctorJSON: --json is one document with every check, its status and
// fix; a refused connection is not blamed on a firewall.
func TestDoctorJSON(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	// Nothing listens on port 1 of the loopback: connection refused.
	cfg := validConfig(t, dataDir, "http://127.0.0.1:1", filepath.Join(t.TempDir(), "ttyNOPE"))
	code, out, errs := runCLI(t, context.Background(), "-c", writeFile(t, "c.toml", cfg), "doctor", "--json")
	if code != 1 || errs != "" {
		t.Fatalf("exit %d, stderr %q; want 1 and nothing", code, errs)
	}
	var doc struct {
		OK     bool          `json:"ok"`
		Failed int           `json:"failed"`
		Checks []checkResult `json:"checks"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("not one JSON document: %v\n%s", err, out)
	}
	if doc.OK || doc.Failed != 3 { // port, platform, token
		t.Errorf("ok %v, failed %d; want false, 3\n%s", doc.OK, doc.Failed, out)
	}
	byCheck := map[string]checkResult{}
	for _, c := range doc.Checks {
		if c.Status == "fail" {
			byCheck[c.Check] = c
		}
		if c.Status == "fail" && c.Fix == "" {
			t.Errorf("failed check without a fix: %+v", c)
		}
	}
	if c := byCheck["port"]; !strings.Contains(c.Fix, "scanagent ports") {
		t.Errorf("port check: %+v", c)
	}
	if c := byCheck["platform"]; !strings.Contains(c.Detail, "TCP 127.0.0.1:1") || !strings.Contains(c.Fix, "nothing listens there") || strings.Contains(c.Fix, "firewall") {
		t.Errorf("platform check: %+v", c)
	}
}

// TestDoctorEscapesWhatItQuotes: an error or an answer quoted by a check
// (a platform's body, a device name) is printed with its control
// characters escaped.
func TestDoctorEscapesWhatItQuotes(t *testing.T) {
	var out strings.Builder
	d := &doctor{e: &env{stdout: &out}}
	d.ok("queue is held by the running agent (its /healthz: %v)", errors.New("bad body \x1b[2J"))
	d.fail("token", errors.New("platform said: \x1b]0;pwned\x07\r\n\u009b31m"), "check the credentials")
	if i, c := unsafeChar(out.String()); i >= 0 {
		t.Fatalf("doctor wrote control character %U:\n%q", c, out.String())
	}
	if !strings.Contains(out.String(), `platform said: \x1b]0;pwned\x07\r\n\u009b31m`) || !strings.Contains(out.String(), "\n    fix: check the credentials\n") {
		t.Fatalf("got %q", out.String())
	}
}
