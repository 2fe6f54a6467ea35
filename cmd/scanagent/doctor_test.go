package main

import (
	"context"
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
