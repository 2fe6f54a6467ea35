//go:build unix

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"scanagent/internal/admin"
	"scanagent/internal/crypto"
	"scanagent/internal/devserver"
	"scanagent/internal/queue"
)

// squatter holds a TCP port the way another user's process could while
// the agent is stopped: it answers every request like an agent would and
// keeps whatever it is sent.
type squatter struct {
	ln    net.Listener
	conns atomic.Int64
	mu    sync.Mutex
	got   strings.Builder
}

func newSquatter(t *testing.T) *squatter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &squatter{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			go func() {
				defer c.Close()
				b := make([]byte, 4096)
				n, _ := c.Read(b)
				s.mu.Lock()
				s.got.Write(b[:n])
				s.mu.Unlock()
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}")
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return s
}

func (s *squatter) heard() (int64, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns.Load(), s.got.String()
}

// readAcks copies what the agent writes to the scanner into a channel.
func readAcks(master io.Reader) <-chan byte {
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
	return acks
}

// TestSquattedAdminPort: another process holds admin_listen's port. The
// queue commands, with the agent stopped and then running, never connect
// to it (so it gets no credential and no record), and the agent, unable
// to bind the port, says so and keeps taking and uploading scans.
func TestSquattedAdminPort(t *testing.T) {
	r := newRig(t, devserver.Options{})
	sq := newSquatter(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	seedQueue(t, dataDir)
	cfg := strings.Replace(validConfig(t, dataDir, r.url, r.slave.Name()), `admin_listen = ""`,
		fmt.Sprintf("admin_listen = %q", sq.ln.Addr().String()), 1)
	cfgPath := writeFile(t, "config.toml", cfg)

	cmds := [][]string{{"queue", "stats", "--json"}, {"queue", "list", "--dead"}, {"queue", "export", "--include-idcard"}}
	for _, args := range cmds {
		if code, _, errs := cli(t, cfgPath, args...); code != 0 {
			t.Fatalf("agent stopped: %v: exit %d, %s", args, code, errs)
		}
	}
	if n, got := sq.heard(); n != 0 {
		t.Fatalf("agent stopped: the queue commands connected %d time(s) to the squatter, sending %q", n, got)
	}

	logs := startAgent(t, cfgPath)
	waitFor(t, func() bool { return strings.Contains(logs.String(), "serial port connected") })
	if !strings.Contains(logs.String(), "cannot listen on admin_listen") {
		t.Fatalf("the agent did not say it cannot bind admin_listen:\n%s", logs.String())
	}
	acks := readAcks(r.master)
	p := demoPerson(3)
	if ok, err := presentCard(context.Background(), r.master, acks, p.xgh+","+p.name+","+p.id+","+p.userType+"\n"); err != nil || !ok {
		t.Fatalf("scan not acknowledged with the port held: %v, %v", ok, err)
	}
	waitFor(t, func() bool { return r.srv.Stats().Accepted >= 1 })
	for _, args := range cmds {
		code, out, errs := cli(t, cfgPath, args...)
		if code != 0 {
			t.Fatalf("agent running: %v: exit %d, %s", args, code, errs)
		}
		if args[1] == "stats" {
			var s queue.Stats
			if err := json.Unmarshal([]byte(out), &s); err != nil {
				t.Fatalf("stats: %v in %q", err, out)
			}
		}
	}
	if n, got := sq.heard(); n != 0 {
		t.Fatalf("agent running: the queue commands connected %d time(s) to the squatter, sending %q", n, got)
	}
}

// hostilePlatform is the platform emulator behind a front that, for the
// scan endpoint, echoes the plaintext ID number of the person scanned in
// its refusals (it can decrypt: the key is the public app id), and first
// resets the connection (a transport error quoting the URL when params =
// "query").
type hostilePlatform struct {
	srv    *devserver.Server
	people map[string]person // by xgh
	mu     sync.Mutex
	calls  map[string]int
}

func (h *hostilePlatform) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "scanrecord.jhtm") {
		h.srv.Handler().ServeHTTP(w, r)
		return
	}
	r.ParseForm()
	xgh := r.Form.Get("xgh")
	p, ok := h.people[xgh]
	h.mu.Lock()
	h.calls[xgh]++
	n := h.calls[xgh]
	h.mu.Unlock()
	if !ok {
		h.srv.Handler().ServeHTTP(w, r)
		return
	}
	switch {
	case n == 1: // reset: the client's error quotes the URL
		if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
			c.Close()
		}
	case n == 2: // not the platform's answer, echoing the ID
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, "<html>登录 %s</html>", p.id)
	case n == 3: // an error counted against max_error_attempts
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"type":"error","content":"系统繁忙: %s"}`, p.id)
	case p.xgh == "202600002": // refused: dead, the reason quoting the ID
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"type":"error","content":"身份证号%s校验失败","errorFields":{"idCard":%q,"name":%q}}`, p.id, p.id, p.name)
	case p.xgh == "202600003": // HTTP 400: dead
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		fmt.Fprintf(w, `{"content":"%s 格式错误"}`, strings.Join(strings.Split(p.id, ""), " "))
	default:
		h.srv.Handler().ServeHTTP(w, r)
	}
}

// TestHostilePlatformRedacted: with params = "query", transport errors
// quote the URL (idCard, name, xgh in it) and the platform echoes ID
// numbers in its refusals. None of it reaches the log, the database or
// journal files, the queue commands' output or the queue API.
func TestHostilePlatformRedacted(t *testing.T) {
	srv, err := devserver.New(devserver.Options{AppID: "01", ClientID: "demo-client", ClientSecret: "demo-secret"})
	if err != nil {
		t.Fatal(err)
	}
	people := []person{demoPerson(0), demoPerson(1), demoPerson(2)}
	hp := &hostilePlatform{srv: srv, people: map[string]person{}, calls: map[string]int{}}
	for _, p := range people {
		hp.people[p.xgh] = p
	}
	hs := httptest.NewServer(hp)
	defer hs.Close()
	r := newRig(t, devserver.Options{})
	dataDir := filepath.Join(t.TempDir(), "data")
	cfg := validConfig(t, dataDir, hs.URL, r.slave.Name())
	cfg = strings.Replace(cfg, `app_id = "01"`, "app_id = \"01\"\nparams = \"query\"", 1)
	cfg = strings.Replace(cfg, `retry_max = "50ms"`, "retry_max = \"50ms\"\nmax_error_attempts = 5", 1)
	cfgPath := writeFile(t, "config.toml", cfg)

	logs := startAgent(t, cfgPath)
	waitFor(t, func() bool { return strings.Contains(logs.String(), "serial port connected") })
	acks := readAcks(r.master)
	for _, p := range people {
		if ok, err := presentCard(context.Background(), r.master, acks, p.xgh+","+p.name+","+p.id+","+p.userType+"\n"); err != nil || !ok {
			t.Fatalf("scan %s not acknowledged: %v, %v", p.xgh, ok, err)
		}
	}
	var st queue.Stats
	waitFor(t, func() bool {
		_, out, _ := cli(t, cfgPath, "queue", "stats", "--json")
		return json.Unmarshal([]byte(out), &st) == nil && st.Pending == 0 && st.Dead == 2
	})
	if srv.Stats().Accepted != 1 {
		t.Fatalf("platform accepted %d, want 1 (person 0 after the faults)", srv.Stats().Accepted)
	}

	// Everything a technician or a tool can see.
	var seen strings.Builder
	for _, args := range [][]string{{"queue", "list", "--dead"}, {"queue", "list", "--dead", "--json"}, {"queue", "export", "--dead"},
		{"queue", "export", "--dead", "--format", "csv"}, {"queue", "stats"}} {
		code, out, errs := cli(t, cfgPath, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d, %s", args, code, errs)
		}
		seen.WriteString(out + errs)
	}
	sock := filepath.Join(dataDir, admin.SocketFile)
	api := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	get := func(path string) string {
		resp, err := api.Get("http://scanagent" + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	page := get("/api/queue/records?state=dead")
	seen.WriteString(page)
	var p admin.RecordsPage
	if err := json.Unmarshal([]byte(page), &p); err != nil || len(p.Items) != 2 {
		t.Fatalf("API dead records: %v, %s", err, page)
	}
	var reasons strings.Builder
	for _, it := range p.Items {
		id := fmt.Sprint(it.Record.ID)
		_, show, _ := cli(t, cfgPath, "queue", "show", id)
		seen.WriteString(show + get("/api/queue/records/"+id))
		reasons.WriteString(it.Record.DeadReason + "\n" + it.Record.LastError + "\n")
	}
	if !strings.Contains(reasons.String(), "校验失败") || !strings.Contains(reasons.String(), "格式错误") {
		t.Fatalf("dead reasons lost the platform's words:\n%s", reasons.String())
	}
	if !strings.Contains(logs.String(), "EOF") && !strings.Contains(logs.String(), "reset") {
		t.Errorf("no transport error in the log:\n%s", logs.String())
	}

	ci, err := crypto.New("01", crypto.Options{})
	if err != nil {
		t.Fatal(err)
	}
	texts := map[string]string{"log": logs.String(), "queue output and API": seen.String(), "stored reasons": reasons.String()}
	for _, p := range people {
		cipher, err := ci.Encrypt(p.id)
		if err != nil {
			t.Fatal(err)
		}
		for where, text := range texts {
			for what, v := range map[string]string{"ID number": p.id, "spaced ID number": strings.Join(strings.Split(p.id, ""), " ")} {
				if strings.Contains(text, v) {
					t.Errorf("%s holds the %s of %s", where, what, p.xgh)
				}
			}
		}
		// The log and the stored reasons quote no form value either.
		for _, where := range []string{"log", "stored reasons"} {
			for what, v := range map[string]string{"idCard": cipher, "escaped idCard": url.QueryEscape(cipher), "name": p.name,
				"escaped name": url.QueryEscape(p.name), "xgh": p.xgh} {
				if strings.Contains(texts[where], v) {
					t.Errorf("%s holds the %s of %s", where, what, p.xgh)
				}
			}
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s\nseen:\n%s", logs.String(), seen.String())
	}
	// The files: database and journal bytes, after a clean stop too.
	assertNoLeaks(t, []string{dataDir}, people, "demo-secret")
	if entries, _ := os.ReadDir(dataDir); len(entries) < 2 {
		t.Fatalf("data_dir holds %d files; want the database and its journal", len(entries))
	}
}

// TestEncryptFromStdin: with "-" the value is read from standard input, so
// an ID number stays out of the shell's history and the process list.
func TestEncryptFromStdin(t *testing.T) {
	for _, in := range []string{"33010219900101123X\n", "33010219900101123X\r\n", "33010219900101123X"} {
		var out, errs strings.Builder
		e := &env{stdout: &out, stderr: &errs, stdin: strings.NewReader(in)}
		if err := (&encryptCmd{}).Run(context.Background(), e, []string{"--app-id", "01", "-"}); err != nil ||
			strings.TrimSpace(out.String()) != "GGX7LbvctIvkW/1lTUmQr2Od6uzbfHL8iBlSg+FOM78=" {
			t.Fatalf("stdin %q: %v, out %q", in, err, out.String())
		}
	}
	e := &env{stdout: io.Discard, stderr: io.Discard, stdin: strings.NewReader("")}
	if err := (&encryptCmd{}).Run(context.Background(), e, []string{"--app-id", "01", "-"}); err == nil {
		t.Fatal("empty standard input: no error")
	}
}

// TestExportFileMode: queue export --output writes a new file only its
// owner can read, whatever the umask, and never over an existing file.
func TestExportFileMode(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	seedQueue(t, dataDir)
	cfgPath := queueConfig(t, dataDir, freeAddr(t), "/dev/null", "")
	out := filepath.Join(t.TempDir(), "export.jsonl")
	code, stdout, errs := cli(t, cfgPath, "queue", "export", "--include-idcard", "--output", out)
	if code != 0 || stdout != "" {
		t.Fatalf("export --output: exit %d, stdout %q, stderr %q", code, stdout, errs)
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("export file: %v, %v; want mode 0600", fi, err)
	}
	if b, _ := os.ReadFile(out); strings.Count(string(b), fakeCipher) != 2 {
		t.Fatalf("export file:\n%s", b)
	}
	if code, _, errs := cli(t, cfgPath, "queue", "export", "--output", out); code != 1 || !strings.Contains(errs, "exists") {
		t.Fatalf("export over an existing file: exit %d, stderr %q", code, errs)
	}
}
