package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"scanagent/internal/devserver"
	"scanagent/internal/queue"
)

// TestNoSecretsLeak runs the agent at debug level through platform failures
// (captive portal, resets, an expired token, a refused record) and then looks
// for every access token the agent used, the client secret and the plaintext
// ID numbers in the log, in the errors stored on records, and in the output
// of `queue list` / `queue show`.
func TestNoSecretsLeak(t *testing.T) {
	srv, err := devserver.New(devserver.Options{AppID: "01", ClientID: "demo-client", ClientSecret: "demo-secret"})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	tokens := map[string]bool{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok := r.URL.Query().Get("access_token"); tok != "" {
			mu.Lock()
			tokens[tok] = true
			mu.Unlock()
		}
		srv.Handler().ServeHTTP(w, r)
	}))
	defer hs.Close()
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	defer slave.Close()
	dataDir := filepath.Join(t.TempDir(), "data")
	adminAddr := freeAddr(t)
	cfg := strings.Replace(validConfig(t, dataDir, hs.URL, slave.Name()), `admin_listen = ""`,
		`admin_listen = "`+adminAddr+`"`+"\nlog_level = \"debug\"", 1)
	cfgPath := writeFile(t, "config.toml", cfg)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logBuf := &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- runMain(ctx, []string{"-c", cfgPath, "run"}, &bytes.Buffer{}, logBuf) }()
	waitFor(t, func() bool { return strings.Contains(logBuf.String(), "serial port connected") })
	acks := make(chan byte, 16)
	go func() {
		b := make([]byte, 1)
		for {
			if _, err := master.Read(b); err != nil {
				return
			}
			acks <- b[0]
		}
	}()
	scan := func(p person) {
		t.Helper()
		if ok, err := presentCard(ctx, master, acks, p.xgh+","+p.name+","+p.id+","+p.userType+"\n"); err != nil || !ok {
			t.Fatalf("scan %s not acknowledged: %v", p.xgh, err)
		}
	}

	people := []person{demoPerson(0)}
	scan(people[0]) // a token first
	waitFor(t, func() bool { return srv.Stats().Accepted == 1 })
	for i, m := range []devserver.Mode{devserver.ModeHTML, devserver.ModeDown, devserver.ModeRedirect, devserver.ModeExpireToken} {
		srv.SetMode(m)
		p := demoPerson(i + 1)
		people = append(people, p)
		scan(p)
		intercepted := srv.Stats().Intercepted
		deadline := time.Now().Add(5 * time.Second)
		for srv.Stats().Intercepted == intercepted && srv.Stats().BadToken == 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	srv.SetMode(devserver.ModeOK)
	refused := demoPerson(9)
	refused.id = "123456" // the platform refuses it: errorFields idCard
	scan(refused)
	waitFor(t, func() bool { return srv.Stats().Accepted == len(people) })

	waitFor(t, func() bool {
		_, o, _ := runCLI(t, ctx, "-c", cfgPath, "queue", "list", "--dead")
		return strings.Contains(o, refused.xgh)
	})
	var out strings.Builder
	for _, args := range [][]string{{"queue", "list", "--dead", "--json"}, {"queue", "list", "--dead"}, {"queue", "stats"}} {
		_, o, e := runCLI(t, ctx, append([]string{"-c", cfgPath}, args...)...)
		out.WriteString(o + e)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("run exited %d", code)
	}

	q, err := queue.Open(filepath.Join(dataDir, queueFile), queue.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	items, _ := q.List(queue.StateDead, 0, 0)
	stored, _ := q.LoadToken()
	q.Close()
	if len(items) != 1 || !strings.Contains(items[0].Record.DeadReason, "idCard") {
		t.Fatalf("dead records = %+v; want the refused one", items)
	}
	code, show, errs := runCLI(t, context.Background(), "-c", cfgPath, "queue", "show", strconv.FormatUint(items[0].Record.ID, 10))
	if code != 0 {
		t.Fatalf("queue show: %d %s", code, errs)
	}
	out.WriteString(show)

	mu.Lock()
	tokens[stored.AccessToken] = true
	secrets := []string{"demo-secret"}
	for tok := range tokens {
		secrets = append(secrets, tok)
	}
	mu.Unlock()
	if len(secrets) < 3 {
		t.Fatalf("only %d tokens seen; the expired-token step did not happen", len(secrets)-1)
	}
	texts := map[string]string{"log": logBuf.String(), "queue output": out.String(),
		"stored errors": items[0].Record.DeadReason + items[0].Record.LastError}
	for where, text := range texts {
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				t.Errorf("%s contains a secret or token %q", where, s[:4]+"…")
			}
		}
		for _, p := range people {
			if strings.Contains(text, p.id) {
				t.Errorf("%s contains the plaintext ID number of %s", where, p.xgh)
			}
		}
	}
	if !strings.Contains(logBuf.String(), "access_token=REDACTED") && !strings.Contains(logBuf.String(), "platform unreachable") {
		t.Errorf("the failures did not show in the log:\n%s", logBuf.String())
	}
}
