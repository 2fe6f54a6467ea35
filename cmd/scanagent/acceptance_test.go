//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"scanagent/internal/crypto"
	"scanagent/internal/devserver"
	"scanagent/internal/queue"
)

// serviceUser is the uid/gid the agent runs as in TestQueueEdgesBlackBox
// (nobody): the service's own user, not root.
const serviceUser = 65534

// TestQueueEdgesBlackBox (issue 13's acceptance): 60 scans pending and 3
// rejected frames; the ID `queue list --rejected` shows is dropped; one
// pending record's bytes are damaged in queue.db; `queue compact` runs as
// root on a data dir owned by the service's user. Then the agent starts as
// that user: the 59 readable scans are delivered once, nothing is left
// pending, the damaged one is dead ("record unreadable"), and every file in
// data_dir is still owned by that user.
func TestQueueEdgesBlackBox(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs compact as root and the agent as another user")
	}
	if testing.Short() {
		t.Skip("subprocess test")
	}
	r := newRig(t, devserver.Options{})
	// A directory the service's user can enter: the agent binary (this
	// test binary), its config and data_dir.
	base, err := os.MkdirTemp("", "scanagent-acceptance-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "scanagent")
	copyFile(t, os.Args[0], bin, 0o755)
	dataDir, logPath := filepath.Join(base, "data"), filepath.Join(base, "agent.log")
	cfg := validConfig(t, dataDir, r.url, "/dev/null")
	cfg = strings.Replace(cfg, "[agent]\n", fmt.Sprintf("[agent]\nlog_level = \"debug\"\nlog_file = %q\n", logPath), 1)
	cfgPath := filepath.Join(base, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	// The queue as the agent left it: 60 scans waiting, 3 rejected frames.
	ctx := context.Background()
	q, err := queue.Open(filepath.Join(dataDir, queueFile), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := crypto.New("01", crypto.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		p := demoPerson(i)
		id, err := c.Encrypt(p.id)
		if err != nil {
			t.Fatal(err)
		}
		rec := &queue.Record{Reader: "gate-1", TermName: "北门闸机", TermSn: "GATE-0001", Xgh: p.xgh, Name: p.name, IDCard: id,
			UserType: p.userType, ScanTime: time.Date(2026, 3, 2, 8, 0, i, 0, time.UTC)}
		if err := q.Enqueue(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if err := q.Reject(ctx, &queue.Rejection{Reader: "gate-1", Raw: []byte(fmt.Sprintf("junk %d", i)), Reason: "no xgh"}); err != nil {
			t.Fatal(err)
		}
	}
	q.Close()
	chownTree(t, base, serviceUser)
	if err := os.Chown(base, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(logPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(logPath, serviceUser, serviceUser); err != nil {
		t.Fatal(err)
	}

	// As root, offline: drop the first rejected frame by the ID shown.
	code, out, errs := cli(t, cfgPath, "queue", "list", "--rejected")
	if code != 0 {
		t.Fatalf("list --rejected: exit %d, %s", code, errs)
	}
	shown := strings.Fields(strings.Split(out, "\n")[1])[0]
	if code, out, errs := cli(t, cfgPath, "queue", "drop", shown, "--yes"); code != 0 || !strings.Contains(out, "rejected frame") {
		t.Fatalf("drop %s: exit %d, %q %q", shown, code, out, errs)
	}
	// One pending record's bytes damaged on disk.
	damaged := demoPerson(17).xgh
	damageRecordBytes(t, filepath.Join(dataDir, queueFile), damaged)
	if code, out, errs := cli(t, cfgPath, "queue", "compact"); code != 0 {
		t.Fatalf("compact as root: exit %d, %q %q", code, out, errs)
	}
	assertOwnedBy(t, dataDir, serviceUser, "compact as root")

	// The agent, as the service's user.
	agent := exec.Command(bin, "-c", cfgPath, "run")
	agent.Env = append(os.Environ(), "SCANAGENT_EXEC_MAIN=1")
	agent.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: serviceUser, Gid: serviceUser}}
	var stderr bytes.Buffer
	agent.Stderr = &stderr
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	readLog := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	deadline := time.Now().Add(30 * time.Second)
	// The damaged record is moved to dead by the uploader's first read,
	// before any upload.
	for len(uniqueXgh(r.srv.Records())) < 59 {
		if time.Now().After(deadline) {
			agent.Process.Kill()
			agent.Wait()
			t.Fatalf("after 30 s: %d of 59 scans delivered; stderr:\n%s\nlog:\n%s", len(uniqueXgh(r.srv.Records())), stderr.String(), readLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
	agent.Process.Signal(syscall.SIGTERM)
	if err := agent.Wait(); err != nil {
		t.Fatalf("agent: %v; stderr:\n%s", err, stderr.String())
	}

	records := r.srv.Records()
	got := uniqueXgh(records)
	if len(records) != 59 || len(got) != 59 || got[damaged] {
		t.Fatalf("platform: %d records, %d distinct (damaged one there: %v); want the 59 readable scans once each", len(records), len(got), got[damaged])
	}
	code, out, errs = cli(t, cfgPath, "queue", "stats", "--json")
	var s queue.Stats
	if code != 0 || json.Unmarshal([]byte(out), &s) != nil {
		t.Fatalf("queue stats: exit %d, %q %q", code, out, errs)
	}
	if s.Pending != 0 || s.Dead != 1 || s.Rejected != 2 || s.Delivered != 59 {
		t.Fatalf("queue stats %+v; want 0 pending, 1 dead, 2 rejected, 59 delivered", s)
	}
	if code, out, _ := cli(t, cfgPath, "queue", "list", "--dead"); code != 0 || !strings.Contains(out, "record unreadable") {
		t.Fatalf("list --dead (exit %d):\n%s", code, out)
	}
	assertOwnedBy(t, dataDir, serviceUser, "the agent's run")
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

func chownTree(t *testing.T, dir string, id int) {
	t.Helper()
	if err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, id, id)
	}); err != nil {
		t.Fatal(err)
	}
}

func assertOwnedBy(t *testing.T, dir string, id uint32, after string) {
	t.Helper()
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != id || st.Gid != id {
			t.Errorf("after %s: %s is owned by %d:%d, not by the service's user %d", after, p, st.Uid, st.Gid, id)
		}
		return nil
	})
}

// damageRecordBytes breaks the JSON of the record with that xgh in every
// copy the file holds (free pages keep older ones), leaving bbolt's own
// structures intact.
func damageRecordBytes(t *testing.T, path, xgh string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	needle := []byte(`"xgh":"` + xgh + `"`)
	if !bytes.Contains(b, needle) {
		t.Fatalf("record %s not in %s", xgh, path)
	}
	for at := bytes.Index(b, needle); at >= 0; at = bytes.Index(b, needle) {
		copy(b[at:], "\x00\x01\x02")
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
