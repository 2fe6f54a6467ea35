package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"scanagent/internal/admin"
	"scanagent/internal/queue"
)

// fakeCipher stands for an idCard ciphertext; it must never be printed
// unless --include-idcard asks for it.
const fakeCipher = "Q2lwaGVydGV4dE5vdFRvU2hvdw=="

// freeAddr returns a loopback address nothing listens on (yet).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// queueConfig writes a config whose platform is unreachable (records stay
// where they are), with admin_listen and [queue] as given.
func queueConfig(t *testing.T, dataDir, adminListen, port, queueTable string) string {
	t.Helper()
	body := validConfig(t, dataDir, "http://127.0.0.1:1", port)
	body = strings.Replace(body, `admin_listen = ""`, fmt.Sprintf("admin_listen = %q", adminListen), 1)
	body = strings.Replace(body, "[[reader]]", queueTable+"\n[[reader]]", 1)
	body = strings.Replace(body, `ack_ok = "06"`, "ack_ok = \"06\"\nack_fail = \"15\"", 1)
	return writeFile(t, "config.toml", body)
}

// seedQueue stores three pending records (one then killed) and a rejected
// frame; it returns the IDs of the records.
func seedQueue(t *testing.T, dataDir string) []uint64 {
	t.Helper()
	ctx := context.Background()
	q, err := queue.Open(filepath.Join(dataDir, queueFile), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var ids []uint64
	for i, x := range []string{"2026A", "2026B", "2026C"} {
		r := &queue.Record{Reader: "gate-1", TermName: "北门闸机", TermSn: "GATE-0001", Xgh: x, Name: "张伟", IDCard: fakeCipher,
			UserType: "学生", ScanTime: time.Date(2026, 1, 2, 3, 4, i, 0, time.UTC)}
		if err := q.Enqueue(ctx, r); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	if err := q.Kill(ctx, ids[1], "errorFields: idCard"); err != nil {
		t.Fatal(err)
	}
	if err := q.Reject(ctx, &queue.Rejection{Reader: "gate-1", Raw: []byte("garbage\x01"), Reason: "no xgh"}); err != nil {
		t.Fatal(err)
	}
	return ids
}

// cli runs one scanagent command line against cfgPath.
func cli(t *testing.T, cfgPath string, args ...string) (int, string, string) {
	t.Helper()
	return runCLI(t, context.Background(), append([]string{"-c", cfgPath}, args...)...)
}

// exerciseQueueCommands runs every queue command against a queue seeded by
// seedQueue, live or offline.
func exerciseQueueCommands(t *testing.T, cfgPath string, ids []uint64) {
	mustCLI := func(args ...string) string {
		t.Helper()
		code, out, errs := cli(t, cfgPath, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d, stderr %q", args, code, errs)
		}
		if strings.Contains(out+errs, fakeCipher) && !strings.Contains(strings.Join(args, " "), "include-idcard") {
			t.Fatalf("%v printed the idCard ciphertext", args)
		}
		return out
	}
	var s queue.Stats
	if err := json.Unmarshal([]byte(mustCLI("queue", "stats", "--json")), &s); err != nil || s.Pending != 2 || s.Dead != 1 || s.Rejected != 1 {
		t.Fatalf("stats --json: %+v, %v", s, err)
	}
	if out := mustCLI("queue", "stats"); !strings.Contains(out, "pending:        2") || !strings.Contains(out, "oldest_pending: 2026-01-0") {
		t.Fatalf("stats:\n%s", out)
	}

	out := mustCLI("queue", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID  SCANNED") || !strings.Contains(lines[1], "2026A") ||
		!strings.Contains(lines[1], "***") || !strings.Contains(lines[2], "2026C") {
		t.Fatalf("list:\n%s", out)
	}
	// Aligned columns: XGH starts at the same place on every line.
	if col := strings.Index(lines[0], "XGH"); strings.Index(lines[1], "2026A") != col || strings.Index(lines[2], "2026C") != col {
		t.Fatalf("list columns not aligned:\n%s", out)
	}
	if want := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC).Local().Format(time.RFC3339); !strings.Contains(lines[1], want) {
		t.Fatalf("list does not show the scan time as %s:\n%s", want, out)
	}
	var items []queue.Item
	if err := json.Unmarshal([]byte(mustCLI("queue", "list", "--dead", "--json")), &items); err != nil || len(items) != 1 ||
		items[0].Record.IDCard != "***" || items[0].Record.DeadReason != "errorFields: idCard" {
		t.Fatalf("list --dead --json: %+v, %v", items, err)
	}
	out = mustCLI("queue", "list", "--rejected")
	if !strings.Contains(out, "no xgh") || !strings.Contains(out, `garbage\x01`) {
		t.Fatalf("list --rejected:\n%s", out)
	}
	// Item 2: the rejected frame's ID as the listing shows it, r<N>, and
	// the same frame through show, the JSON listing and drop; a bare
	// number is always a scan record.
	rejID := strings.Fields(strings.Split(out, "\n")[1])[0]
	if rejID != "r1" {
		t.Fatalf("list --rejected shows the frame as %q, want r1:\n%s", rejID, out)
	}
	if out := mustCLI("queue", "show", rejID); !strings.Contains(out, "rejected") || !strings.Contains(out, "r1") {
		t.Fatalf("show %s:\n%s", rejID, out)
	}
	if out := mustCLI("queue", "list", "--rejected", "--json"); !strings.Contains(out, `"id": "r1"`) {
		t.Fatalf("list --rejected --json:\n%s", out)
	}
	if out := mustCLI("queue", "show", "1"); !strings.Contains(out, "2026A") {
		t.Fatalf("show 1 is not the first scan record:\n%s", out)
	}
	if code, _, errs := cli(t, cfgPath, "queue", "retry", rejID); code != 1 || !strings.Contains(errs, "rejected") {
		t.Fatalf("retry %s: exit %d, stderr %q", rejID, code, errs)
	}
	if out := mustCLI("queue", "drop", rejID, "--yes"); !strings.Contains(out, "dropped rejected frame r1") {
		t.Fatalf("drop %s: %q", rejID, out)
	}
	if err := json.Unmarshal([]byte(mustCLI("queue", "stats", "--json")), &s); err != nil || s.Pending != 2 || s.Dead != 1 || s.Rejected != 0 {
		t.Fatalf("stats after dropping %s: %+v, %v (a scan record was dropped instead?)", rejID, s, err)
	}
	if code, _, errs := cli(t, cfgPath, "queue", "list", "--limit", "1"); code != 0 || !strings.Contains(errs, "raise --limit") {
		t.Fatalf("list --limit 1: exit %d, stderr %q", code, errs)
	}

	out = mustCLI("queue", "show", fmt.Sprint(ids[1]))
	for _, want := range []string{"state:", "dead", "xgh:", "2026B", "idCard:", "***", "deadReason:", "errorFields: idCard"} {
		if !strings.Contains(out, want) {
			t.Fatalf("show lacks %q:\n%s", want, out)
		}
	}
	if code, _, errs := cli(t, cfgPath, "queue", "show", "999"); code != 1 || !strings.Contains(errs, "no such record") {
		t.Fatalf("show 999: exit %d, stderr %q", code, errs)
	}

	out = mustCLI("queue", "export")
	if n := strings.Count(out, "\n"); n != 2 || !strings.Contains(out, `"idCard":"***"`) {
		t.Fatalf("export jsonl:\n%s", out)
	}
	out = mustCLI("queue", "export", "--dead", "--format", "csv")
	if !strings.HasPrefix(out, "id,reader,termName,termSn,xgh,name,idCard,") || !strings.Contains(out, ",***,") || strings.Count(out, "\n") != 2 {
		t.Fatalf("export csv:\n%s", out)
	}
	code, out, errs := cli(t, cfgPath, "queue", "export", "--include-idcard")
	if code != 0 || strings.Count(out, fakeCipher) != 2 || !strings.Contains(errs, "warning") {
		t.Fatalf("export --include-idcard: exit %d, stderr %q, ciphertexts %d", code, errs, strings.Count(out, fakeCipher))
	}

	if code, _, errs := cli(t, cfgPath, "queue", "retry", fmt.Sprint(ids[0])); code != 1 || !strings.Contains(errs, "not dead") {
		t.Fatalf("retry of a pending record: exit %d, stderr %q", code, errs)
	}
	if out := mustCLI("queue", "retry", fmt.Sprint(ids[1])); !strings.Contains(out, "1 dead record") {
		t.Fatalf("retry: %q", out)
	}
	if code, _, _ := cli(t, cfgPath, "queue", "drop", fmt.Sprint(ids[0])); code != 2 {
		t.Fatalf("drop without --yes: exit %d, want 2", code)
	}
	if out := mustCLI("queue", "drop", fmt.Sprint(ids[0]), "--yes"); !strings.Contains(out, "dropped pending record") {
		t.Fatalf("drop: %q", out)
	}
	if out := mustCLI("queue", "retry", "--all-dead"); !strings.Contains(out, "0 dead record") {
		t.Fatalf("retry --all-dead: %q", out)
	}
	if err := json.Unmarshal([]byte(mustCLI("queue", "stats", "--json")), &s); err != nil || s.Pending != 2 || s.Dead != 0 {
		t.Fatalf("stats at the end: %+v, %v", s, err)
	}
}

func TestQueueCommandsOffline(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	ids := seedQueue(t, dataDir)
	// admin_listen points at nothing: the commands open the file.
	cfgPath := queueConfig(t, dataDir, freeAddr(t), "/dev/null", "")
	exerciseQueueCommands(t, cfgPath, ids)

	code, out, errs := cli(t, cfgPath, "queue", "compact")
	if code != 0 || !strings.Contains(out, "compacted") {
		t.Fatalf("compact: exit %d, %q %q", code, out, errs)
	}
}

// startAgent runs `scanagent run` with cfgPath until the test ends and
// waits until it has started (its listeners are bound by then).
func startAgent(t *testing.T, cfgPath string) *syncBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	logs := &syncBuffer{}
	go func() { done <- runMain(ctx, []string{"-c", cfgPath, "run"}, io.Discard, logs) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("run exited %d; log:\n%s", code, logs.String())
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "scanagent started") {
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not start; log:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return logs
}

func TestQueueCommandsLive(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	ids := seedQueue(t, dataDir)
	addr := freeAddr(t)
	cfgPath := queueConfig(t, dataDir, addr, "/dev/null", "")
	// A token file left by an older version is removed at start.
	if err := os.WriteFile(filepath.Join(dataDir, oldTokenFile), []byte(strings.Repeat("ab", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	startAgent(t, cfgPath)
	if _, err := os.Stat(filepath.Join(dataDir, oldTokenFile)); !os.IsNotExist(err) {
		t.Fatalf("%s left in data_dir: %v", oldTokenFile, err)
	}
	// The queue API is on the socket only: not on admin_listen.
	fi, err := os.Lstat(filepath.Join(dataDir, admin.SocketFile))
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm()&0o007 != 0 {
		t.Fatalf("admin.sock: %v, %v; want a socket others cannot open", fi, err)
	}
	resp, err := http.Get("http://" + addr + "/api/queue/stats")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("/api/queue/stats on admin_listen: %d, want 404", resp.StatusCode)
	}

	// The file is locked by the agent, so every command below goes
	// through the admin socket.
	exerciseQueueCommands(t, cfgPath, ids)

	if code, _, errs := cli(t, cfgPath, "queue", "compact"); code != 1 || !strings.Contains(errs, "only while the agent is stopped") {
		t.Fatalf("compact while running: exit %d, stderr %q", code, errs)
	}
	resp, err = http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"scanagent_queue_pending 2\n", "scanagent_queue_dead 0\n", `scanagent_reader_connected{reader="gate-1"}`,
		`scanagent_uploads_total{outcome="transient"}`, "scanagent_token_fetches_total ", "scanagent_queue_oldest_pending_age_seconds "} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
}

// TestQueueCommandNeverHangs: the file is locked and the admin API does not
// answer (or is off): a clear message well within 2 seconds.
func TestQueueCommandNeverHangs(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	seedQueue(t, dataDir)
	q, err := queue.Open(filepath.Join(dataDir, queueFile), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	// The socket: a listener that accepts and never answers, then none.
	sock, err := net.Listen("unix", filepath.Join(dataDir, admin.SocketFile))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := sock.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	for _, tc := range []struct {
		name string
		stop func()
	}{{"silent socket", func() {}}, {"no socket", func() { sock.Close() }}} {
		tc.stop()
		cfgPath := queueConfig(t, dataDir, freeAddr(t), "/dev/null", "")
		start := time.Now()
		code, _, errs := cli(t, cfgPath, "queue", "list")
		if took := time.Since(start); code != 1 || took > 2*time.Second || !strings.Contains(errs, "locked") || !strings.Contains(errs, "socket does not answer") {
			t.Fatalf("%s: exit %d after %v, stderr %q; want 1 within 2s saying the file is locked and the socket does not answer", tc.name, code, took, errs)
		}
	}
}

// TestAgentStartsWithDamagedQueue: a truncated or garbage queue.db is moved
// aside, the agent starts on a fresh queue and says how to salvage.
func TestAgentStartsWithDamagedQueue(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"truncated", func(t *testing.T, path string) {
			fi, _ := os.Stat(path)
			if err := os.Truncate(path, fi.Size()/3); err != nil {
				t.Fatal(err)
			}
		}},
		{"garbage", func(t *testing.T, path string) {
			if err := os.WriteFile(path, bytes.Repeat([]byte("garbage!"), 8192), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			seedQueue(t, dataDir)
			tc.damage(t, filepath.Join(dataDir, queueFile))
			addr := freeAddr(t)
			cfgPath := queueConfig(t, dataDir, addr, "/dev/null", "")
			logs := startAgent(t, cfgPath)
			moved, _ := filepath.Glob(filepath.Join(dataDir, queueFile+".corrupt-*"))
			if len(moved) != 1 || !strings.Contains(logs.String(), "scanagent queue salvage "+moved[0]) {
				t.Fatalf("quarantined %v; log:\n%s", moved, logs.String())
			}
			var s queue.Stats
			code, out, errs := cli(t, cfgPath, "queue", "stats", "--json")
			if code != 0 || json.Unmarshal([]byte(out), &s) != nil || s.Pending != 0 {
				t.Fatalf("stats on the fresh queue: exit %d, %q %q", code, out, errs)
			}
		})
	}
}

// damageRecordPage overwrites the page that holds the record with that xgh.
func damageRecordPage(t *testing.T, path, xgh string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Every page that holds the record: the live one, and stale copies in
	// free pages (damaging only the last copy in the file sometimes hit a
	// free page and left the live one intact).
	key := []byte(`"xgh":"` + xgh + `"`)
	found := false
	for off := 0; ; {
		i := bytes.Index(b[off:], key)
		if i < 0 {
			break
		}
		found = true
		start := (off + i) / 4096 * 4096
		copy(b[start:start+4096], bytes.Repeat([]byte("garbage!"), 512))
		off = start + 4096
	}
	if !found {
		t.Fatalf("record %s not in the file", xgh)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// seedDamaged writes n pending records into file and damages one page.
func seedDamaged(t *testing.T, file string, n int) {
	t.Helper()
	q, err := queue.Open(file, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, n)
	for i := range n { // concurrently: they share commits
		go func() {
			errc <- q.Enqueue(context.Background(), &queue.Record{Reader: "gate-1", Xgh: fmt.Sprintf("x%04d", i), IDCard: fakeCipher})
		}()
	}
	for range n {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	q.Close()
	damageRecordPage(t, file, fmt.Sprintf("x%04d", n/2))
}

func TestQueueSalvage(t *testing.T) {
	const n = 400
	t.Run("offline", func(t *testing.T) {
		dataDir := filepath.Join(t.TempDir(), "data")
		seedQueue(t, dataDir)
		damaged := filepath.Join(t.TempDir(), "queue.db.corrupt-20260102T030405Z")
		seedDamaged(t, damaged, n)
		cfgPath := queueConfig(t, dataDir, "", "/dev/null", "")
		code, out, errs := cli(t, cfgPath, "queue", "salvage", damaged)
		var got int
		fmt.Sscanf(out, "salvaged %d pending", &got)
		if code != 0 || got < n-40 || got >= n || !strings.Contains(out, "could not be read") {
			t.Fatalf("salvage: exit %d, %q %q", code, out, errs)
		}
		if code, _, errs := cli(t, cfgPath, "queue", "salvage", damaged); code != 1 || !strings.Contains(errs, "already salvaged") {
			t.Fatalf("second salvage: exit %d, %q", code, errs)
		}
		var s queue.Stats
		_, out, _ = cli(t, cfgPath, "queue", "stats", "--json")
		if json.Unmarshal([]byte(out), &s) != nil || int(s.Pending) != 2+got {
			t.Fatalf("stats after salvage %+v; want %d pending", s, 2+got)
		}
	})
	t.Run("live", func(t *testing.T) {
		dataDir := filepath.Join(t.TempDir(), "data")
		seedQueue(t, dataDir)
		damaged := filepath.Join(dataDir, "queue.db.corrupt-20260102T030405Z")
		seedDamaged(t, damaged, n)
		elsewhere := filepath.Join(t.TempDir(), "copy.db")
		if b, err := os.ReadFile(damaged); err != nil || os.WriteFile(elsewhere, b, 0o600) != nil {
			t.Fatal(err)
		}
		addr := freeAddr(t)
		cfgPath := queueConfig(t, dataDir, addr, "/dev/null", "")
		startAgent(t, cfgPath)
		if code, _, errs := cli(t, cfgPath, "queue", "salvage", elsewhere); code != 1 || !strings.Contains(errs, "only files in data_dir") {
			t.Fatalf("live salvage of a file outside data_dir: exit %d, %q", code, errs)
		}
		code, out, errs := cli(t, cfgPath, "queue", "salvage", damaged)
		var got int
		fmt.Sscanf(out, "salvaged %d pending", &got)
		if code != 0 || got < n-40 || got >= n {
			t.Fatalf("live salvage: exit %d, %q %q", code, out, errs)
		}
	})
}

// TestQueueFullAckFail fills a queue of max_pending = 2 through a real pty:
// the third scan is answered with ack_fail, /healthz says 503, the agent
// logs one line when it fills and one when it drains.
func TestQueueFullAckFail(t *testing.T) {
	master, slave, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer master.Close()
	defer slave.Close()
	dataDir := filepath.Join(t.TempDir(), "data")
	addr := freeAddr(t)
	cfgPath := queueConfig(t, dataDir, addr, slave.Name(), "[queue]\nmax_pending = 2\n")
	logs := startAgent(t, cfgPath)
	for !strings.Contains(logs.String(), "serial port connected") {
		time.Sleep(5 * time.Millisecond)
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
	ctx := context.Background()
	scan := func(i int) bool {
		t.Helper()
		p := demoPerson(i)
		ok, err := presentCard(ctx, master, acks, p.xgh+","+p.name+","+p.id+","+p.userType+"\n")
		if err != nil {
			t.Fatalf("scan %d: %v", i, err)
		}
		return ok
	}
	for i := range 2 {
		if !scan(i) {
			t.Fatalf("scan %d not acknowledged with ack_ok; log:\n%s", i, logs.String())
		}
	}
	for i := 2; i < 4; i++ {
		if scan(i) {
			t.Fatalf("scan %d stored although the queue is full", i)
		}
	}
	health := func() (int, admin.Health) {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var h admin.Health
		json.NewDecoder(resp.Body).Decode(&h)
		return resp.StatusCode, h
	}
	if code, h := health(); code != 503 || !h.QueueFull {
		t.Fatalf("/healthz when full: %d %+v", code, h)
	}
	// Make room: drop the oldest record.
	_, out, _ := cli(t, cfgPath, "queue", "list", "--json")
	var items []queue.Item
	if err := json.Unmarshal([]byte(out), &items); err != nil || len(items) != 2 {
		t.Fatalf("list: %q", out)
	}
	if code, _, errs := cli(t, cfgPath, "queue", "drop", fmt.Sprint(items[0].Record.ID), "--yes"); code != 0 {
		t.Fatalf("drop: %q", errs)
	}
	waitFor(t, func() bool { return strings.Contains(logs.String(), "queue no longer full") })
	if code, h := health(); code != 200 || h.QueueFull {
		t.Fatalf("/healthz after a drop: %d %+v", code, h)
	}
	if !scan(4) {
		t.Fatal("scan after making room not stored")
	}
	// Full (two scans refused, one line), not full, full again.
	waitFor(t, func() bool { return strings.Count(logs.String(), "queue full:") == 2 })
	log := logs.String()
	if n := strings.Count(log, "queue full:"); n != 2 {
		t.Fatalf("%d 'queue full' lines, want 2 (one per state change):\n%s", n, log)
	}
	if n := strings.Count(log, "queue no longer full"); n != 1 {
		t.Fatalf("%d 'no longer full' lines, want 1:\n%s", n, log)
	}
	for i := range 5 {
		if strings.Contains(log, demoPerson(i).id) {
			t.Fatal("the log contains a plaintext ID number")
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestQueueListShowsTriesAndWholeCause: a record the platform failed three
// times shows 3 tries (not 0 counted attempts) and its whole last error.
func TestQueueListShowsTriesAndWholeCause(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	ids := seedQueue(t, dataDir)
	q, err := queue.Open(filepath.Join(dataDir, queueFile), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cause := "platform unreachable: Post \"https://open.example.edu.cn/api/scanrecord.jhtm\": dial tcp 10.1.2.3:443: i/o timeout (the campus firewall?)"
	for range 3 {
		if err := q.Note(context.Background(), ids[0], 0, cause, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	q.Close()
	cfgPath := writeFile(t, "config.toml", validConfig(t, dataDir, "http://127.0.0.1:1", "/dev/ttyUSB0"))
	code, out, errs := cli(t, cfgPath, "queue", "list")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var row string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, fmt.Sprint(ids[0])+" ") {
			row = line
		}
	}
	if !strings.Contains(out, "TRIES") || !strings.Contains(row, " 3 ") || !strings.HasSuffix(row, cause) {
		t.Errorf("list row %q; want 3 tries and the whole cause\n%s", row, out)
	}
	_, out, _ = cli(t, cfgPath, "queue", "show", fmt.Sprint(ids[0]))
	if !strings.Contains(out, "tries") || !strings.Contains(out, cause) {
		t.Errorf("show:\n%s", out)
	}
}
