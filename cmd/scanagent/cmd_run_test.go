package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"scanagent/internal/queue"
)

// TestWaitForConfig: an invalid file is reported once (not at every poll),
// again once after an edit that is still wrong, and the wait ends when the
// file becomes valid; a missing file waits too; cancelling ends the wait.
func TestWaitForConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	valid := "[agent]\ndata_dir = 'data'\n[platform]\nclient_id = \"c\"\nclient_secret = \"s\"\napp_id = \"01\"\n" +
		"[[reader]]\nname = \"r\"\nport = \"/dev/ttyS0\"\nterm_name = \"t\"\nterm_sn = \"sn\"\n"
	if err := os.WriteFile(path, []byte(strings.Replace(valid, `client_id = "c"`, `client_id = ""`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	e := &env{stdout: &stderr, stderr: &stderr, configPath: path}
	done := make(chan error, 1)
	go func() { done <- waitForConfig(context.Background(), e, time.Millisecond) }()

	waitFor(t, func() bool { return strings.Contains(stderr.String(), "client_id: is empty") })
	time.Sleep(20 * time.Millisecond) // ~20 polls of an unchanged file
	if n := strings.Count(stderr.String(), "waiting for a valid configuration"); n != 1 {
		t.Fatalf("said %d times that it waits, want once:\n%s", n, stderr.String())
	}
	writeAtomic(t, path, strings.Replace(valid, `app_id = "01"`, `app_id = ""`, 1))
	waitFor(t, func() bool { return strings.Contains(stderr.String(), "app_id: is empty") })
	writeAtomic(t, path, valid)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("waitForConfig = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waitForConfig did not return after the file became valid")
	}
	if n := strings.Count(stderr.String(), "waiting for a valid configuration"); n != 2 || !strings.Contains(stderr.String(), "is valid now; starting") {
		t.Errorf("output:\n%s", stderr.String())
	}

	// A missing file: reported, then a cancel ends the wait without error.
	ctx, cancel := context.WithCancel(context.Background())
	var out2 syncBuffer
	e2 := &env{stdout: &out2, stderr: &out2, configPath: filepath.Join(dir, "missing.toml")}
	go func() { done <- waitForConfig(ctx, e2, time.Millisecond) }()
	waitFor(t, func() bool { return strings.Contains(out2.String(), "scanagent config example >") })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("after cancel: %v, want nil", err)
	}
}

// writeAtomic replaces path as an editor that saves by rename does, so the
// poller never reads a half-written file (which it would report too).
func writeAtomic(t *testing.T, path, body string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestSecondAgentSaysWhatToDo: an agent started while another holds the
// same data_dir stops with the reason and the next step.
func TestSecondAgentSaysWhatToDo(t *testing.T) {
	port := filepath.Join(t.TempDir(), "ttyUSB0") // never opened: the queue lock comes first
	dataDir := t.TempDir()
	q, err := queue.Open(filepath.Join(dataDir, queueFile), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	cfgPath := writeFile(t, "config.toml", validConfig(t, dataDir, "http://127.0.0.1:1", port))
	code, _, errs := runCLI(t, context.Background(), "-c", cfgPath, "run")
	if code != 1 || !strings.Contains(errs, "another scanagent already runs with data_dir "+dataDir) || !strings.Contains(errs, "stop it first (scanagent service stop)") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}
