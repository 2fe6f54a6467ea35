package upload

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"scanagent/internal/queue"
	"scanagent/internal/redact"
)

// platform is a real HTTP server playing the platform, with a switchable
// scan handler.
type platform struct {
	srv       *httptest.Server
	fetches   atomic.Int64
	mu        sync.Mutex
	token     string
	scan      func(w http.ResponseWriter, r *http.Request) // nil = success
	received  []url.Values
	tokenCode int // 0 = 200
}

func newPlatform(t *testing.T) *platform {
	p := &platform{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth/token", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&body) != nil ||
			body["grant_type"] != "client_credentials" {
			http.Error(w, "bad token request", 400)
			return
		}
		n := p.fetches.Add(1)
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.tokenCode != 0 || body["client_secret"] != "secret-xyz" {
			w.WriteHeader(max(p.tokenCode, 401))
			return
		}
		p.token = fmt.Sprintf("tok-%d-abcdef", n)
		fmt.Fprintf(w, `{"access_token":%q,"expires_in":"1209600","scope":"base_api","token_type":"Bearer"}`, p.token)
	})
	mux.HandleFunc("/api/scanrecord.jhtm", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		tok, h := p.token, p.scan
		p.mu.Unlock()
		if r.URL.Query().Get("access_token") != tok {
			w.WriteHeader(403)
			io.WriteString(w, `{"error":"invalid_grant","error_description":"Access token is expired"}`)
			return
		}
		if h != nil {
			h(w, r)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		p.mu.Lock()
		p.received = append(p.received, r.Form)
		p.mu.Unlock()
		io.WriteString(w, `{"type":"success","code":"1","content":"成功","anchor":"undefined","errorFields":[],"data":null}`)
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *platform) setScan(h func(w http.ResponseWriter, r *http.Request)) {
	p.mu.Lock()
	p.scan = h
	p.mu.Unlock()
}

func (p *platform) got() []url.Values {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]url.Values(nil), p.received...)
}

type rig struct {
	q      *queue.Queue
	ts     *TokenSource
	up     *Uploader
	logBuf *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
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

func newRig(t *testing.T, p *platform, dbPath string, mod func(*Options)) *rig {
	t.Helper()
	if dbPath == "" {
		dbPath = filepath.Join(t.TempDir(), "queue.db")
	}
	q, err := queue.Open(dbPath, queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logBuf := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	red := redact.New()
	client, err := NewHTTPClient(2*time.Second, "", 4)
	if err != nil {
		t.Fatal(err)
	}
	ts := NewTokenSource(client, p.srv.URL+"/oauth/token", "cid", "secret-xyz", q, TokenOptions{Logger: log, Redactor: red})
	opts := Options{ScanURL: p.srv.URL + "/api/scanrecord.jhtm", AppID: "01", Concurrency: 3,
		RetryInitial: time.Millisecond, RetryMax: 5 * time.Millisecond, MaxErrorAttempts: 3, Logger: log, Redactor: red}
	if mod != nil {
		mod(&opts)
	}
	up, err := New(q, ts, client, opts)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{q: q, ts: ts, up: up, logBuf: logBuf}
	t.Cleanup(func() { r.stop(); q.Close() })
	return r
}

func (r *rig) start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- r.up.Run(ctx) }()
}

func (r *rig) stop() {
	if r.cancel != nil {
		r.cancel()
		<-r.done
		r.cancel = nil
	}
}

func (r *rig) enqueue(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		rec := &queue.Record{Reader: "r", TermName: "东湖食堂 1 号机", TermSn: "SN1", Xgh: fmt.Sprintf("x%03d", i), Name: "张三",
			IDCard: "CIPHER==", UserType: "教师", ScanTime: time.Date(2026, 3, 1, 0, 30, 0, 0, time.UTC)}
		if err := r.q.Enqueue(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
	}
}

func (r *rig) stats(t *testing.T) queue.Stats {
	t.Helper()
	s, err := r.q.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestDeliversWithFieldsAndOneToken(t *testing.T) {
	for _, params := range []string{"form", "query"} {
		t.Run(params, func(t *testing.T) {
			p := newPlatform(t)
			r := newRig(t, p, "", func(o *Options) { o.Params = params })
			r.enqueue(t, 30)
			r.start()
			waitFor(t, "all delivered", func() bool { return r.stats(t).Delivered == 30 })
			got := p.got()
			if len(got) != 30 {
				t.Fatalf("platform got %d records, want 30", len(got))
			}
			f := got[0]
			want := map[string]string{"termName": "东湖食堂 1 号机", "termSn": "SN1", "name": "张三", "idCard": "CIPHER==",
				"userType": "教师", "appId": "01", "scanDate": "2026-03-01 08:30:00"}
			for k, v := range want {
				if f.Get(k) != v {
					t.Errorf("field %s = %q, want %q", k, f.Get(k), v)
				}
			}
			if n := p.fetches.Load(); n != 1 {
				t.Errorf("token fetches = %d, want 1", n)
			}
			if s := r.stats(t); s.Pending != 0 || s.Dead != 0 {
				t.Errorf("stats = %+v; want nothing pending or dead", s)
			}
		})
	}
}

func TestStoredTokenReusedAfterRestart(t *testing.T) {
	p := newPlatform(t)
	db := filepath.Join(t.TempDir(), "queue.db")
	r := newRig(t, p, db, nil)
	r.enqueue(t, 3)
	r.start()
	waitFor(t, "delivered", func() bool { return r.stats(t).Delivered == 3 })
	r.stop()
	r.q.Close()

	r2 := newRig(t, p, db, nil)
	r2.enqueue(t, 3)
	r2.start()
	waitFor(t, "delivered after restart", func() bool { return r2.stats(t).Delivered == 6 })
	if n := p.fetches.Load(); n != 1 {
		t.Fatalf("token fetches across a restart = %d, want 1 (the stored token reused)", n)
	}
}

func TestNeverDeliveredWithoutSuccess(t *testing.T) {
	cases := map[string]func(w http.ResponseWriter, r *http.Request){
		"html 200": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<html><title>Campus Wi-Fi login</title></html>")
		},
		"302": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/login?next=x", http.StatusFound)
		},
		"503": func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) },
		"json without type": func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"ok":true}`)
		},
	}
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			p := newPlatform(t)
			var hits atomic.Int64
			p.setScan(func(w http.ResponseWriter, r *http.Request) { hits.Add(1); h(w, r) })
			r := newRig(t, p, "", nil)
			r.enqueue(t, 5)
			r.start()
			waitFor(t, "several failed attempts", func() bool { return hits.Load() >= 6 })
			if s := r.stats(t); s.Delivered != 0 || s.Pending != 5 || s.Dead != 0 {
				t.Fatalf("stats = %+v; want 5 pending, none delivered or dead", s)
			}
			items, _ := r.q.List(queue.StatePending, 0, 1)
			if items[0].Record.LastError == "" {
				t.Errorf("no last error noted on the record")
			}
			p.setScan(nil)
			waitFor(t, "delivery once the platform is back", func() bool { return r.stats(t).Delivered == 5 })
			if !strings.Contains(r.logBuf.String(), "platform unreachable") {
				t.Errorf("no state-change log line; log:\n%s", r.logBuf.String())
			}
		})
	}
}

func TestDeadAndCountedErrors(t *testing.T) {
	p := newPlatform(t)
	p.setScan(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		switch r.Form.Get("xgh") {
		case "x000":
			io.WriteString(w, `{"type":"error","content":"身份证号错误","errorFields":["idCard"]}`)
		case "x001":
			w.WriteHeader(422)
		case "x002":
			io.WriteString(w, `{"type":"error","content":"系统繁忙","errorFields":[]}`)
		default:
			io.WriteString(w, `{"type":"success","errorFields":[]}`)
		}
	})
	r := newRig(t, p, "", nil)
	r.enqueue(t, 4)
	r.start()
	waitFor(t, "3 dead and 1 delivered", func() bool { s := r.stats(t); return s.Dead == 3 && s.Delivered == 1 })
	dead, _ := r.q.List(queue.StateDead, 0, 0)
	reasons := map[string]string{}
	for _, it := range dead {
		reasons[it.Record.Xgh] = it.Record.DeadReason
	}
	for xgh, want := range map[string]string{"x000": "idCard", "x001": "HTTP 422", "x002": "after 3 attempts"} {
		if !strings.Contains(reasons[xgh], want) {
			t.Errorf("dead reason of %s = %q, want it to mention %q", xgh, reasons[xgh], want)
		}
	}
}

func TestInvalidTokenRefetchedOnce(t *testing.T) {
	p := newPlatform(t)
	r := newRig(t, p, "", nil)
	r.enqueue(t, 2)
	r.start()
	waitFor(t, "delivered", func() bool { return r.stats(t).Delivered == 2 })
	// The platform forgets the token (a new one was fetched elsewhere).
	p.mu.Lock()
	p.token = "someone-else"
	p.mu.Unlock()
	r.enqueue(t, 10)
	waitFor(t, "delivered after token churn", func() bool { return r.stats(t).Delivered == 12 })
	if n := p.fetches.Load(); n != 2 {
		t.Fatalf("token fetches = %d, want 2 (single-flight re-fetch)", n)
	}
}

func TestBadCredentialsRetriedSlowly(t *testing.T) {
	p := newPlatform(t)
	p.tokenCode = 401
	r := newRig(t, p, "", nil)
	r.enqueue(t, 2)
	r.start()
	waitFor(t, "a config error logged", func() bool { return strings.Contains(r.logBuf.String(), "configuration error") })
	time.Sleep(50 * time.Millisecond) // many backoff periods of the uploader
	if n := p.fetches.Load(); n != 1 {
		t.Fatalf("token fetches with wrong credentials = %d, want 1 (retried after minutes)", n)
	}
	if strings.Contains(r.logBuf.String(), "secret-xyz") {
		t.Fatalf("client secret in the log")
	}
	if s := r.stats(t); s.Pending != 2 {
		t.Fatalf("pending = %d, want 2 kept", s.Pending)
	}
}

func TestNoTokenInLogsOrStoredErrors(t *testing.T) {
	p := newPlatform(t)
	// Connection reset: *url.Error prints the URL, access_token included.
	p.setScan(func(w http.ResponseWriter, r *http.Request) {
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	})
	r := newRig(t, p, "", nil)
	r.enqueue(t, 1)
	r.start()
	waitFor(t, "a failure noted", func() bool {
		items, _ := r.q.List(queue.StatePending, 0, 1)
		return len(items) == 1 && items[0].Record.LastError != ""
	})
	r.stop()
	items, _ := r.q.List(queue.StatePending, 0, 1)
	p.mu.Lock()
	tok := p.token
	p.mu.Unlock()
	for where, text := range map[string]string{"log": r.logBuf.String(), "stored error": items[0].Record.LastError} {
		if strings.Contains(text, tok) || strings.Contains(text, "secret-xyz") {
			t.Errorf("%s leaks a secret: %s", where, text)
		}
	}
	if !strings.Contains(items[0].Record.LastError, "access_token=REDACTED") {
		t.Errorf("stored error = %q; want the URL with the token redacted", items[0].Record.LastError)
	}
}

func TestClassify(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := func(kv ...string) http.Header {
		hd := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			hd.Set(kv[i], kv[i+1])
		}
		return hd
	}
	for _, tc := range []struct {
		name   string
		status int
		header http.Header
		body   string
		want   Outcome
		after  time.Duration
	}{
		{"success", 200, nil, `{"type":"success","errorFields":[]}`, Delivered, 0},
		{"error with fields", 200, nil, `{"type":"error","errorFields":["idCard"]}`, Dead, 0},
		{"error with string field", 200, nil, `{"type":"error","errorFields":"idCard"}`, Dead, 0},
		{"error without fields", 200, nil, `{"type":"error","errorFields":[]}`, Counted, 0},
		{"error null fields", 200, nil, `{"type":"error","errorFields":null}`, Counted, 0},
		{"html", 200, h("Content-Type", "text/html"), `<html>login</html>`, Transient, 0},
		{"empty 200", 200, nil, ``, Transient, 0},
		{"invalid_grant 200", 200, nil, `{"error":"invalid_grant"}`, BadToken, 0},
		{"invalid_token 400", 400, nil, `{"error":"invalid_token"}`, BadToken, 0},
		{"401", 401, nil, ``, BadToken, 0},
		{"403", 403, nil, `{"error":"access_denied"}`, BadToken, 0},
		{"400", 400, nil, ``, Dead, 0},
		{"404", 404, nil, ``, Systemic, 0},
		{"405", 405, nil, ``, Systemic, 0},
		{"413", 413, nil, ``, Dead, 0},
		{"422", 422, nil, ``, Dead, 0},
		{"408", 408, nil, ``, Transient, 0},
		{"429 seconds", 429, h("Retry-After", "7"), ``, Transient, 7 * time.Second},
		{"503 date", 503, h("Retry-After", now.Add(90*time.Second).Format(http.TimeFormat)), ``, Transient, 90 * time.Second},
		{"500", 500, nil, `{"type":"success"}`, Transient, 0},
		{"302", 302, h("Location", "/login"), ``, Transient, 0},
		{"301", 301, nil, ``, Transient, 0},
		{"410 unknown", 410, nil, ``, Counted, 0},
		// Item 10: a BOM is not part of the answer; an answer too large to
		// judge is retried, but counted (never an endless loop).
		{"success with a BOM", 200, nil, "\ufeff" + `{"type":"success","errorFields":[]}`, Delivered, 0},
		{"success over the limit", 200, nil, `{"type":"success","data":"` + strings.Repeat("x", MaxAnswer) + `"}`, Counted, 0},
		{"503 over the limit", 503, nil, strings.Repeat("x", MaxAnswer+1), Transient, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hd := tc.header
			if hd == nil {
				hd = http.Header{}
			}
			got := Classify(tc.status, hd, []byte(tc.body), now)
			if got.Outcome != tc.want || got.RetryAfter != tc.after {
				t.Errorf("got %v (retry after %v, %q), want %v (retry after %v)", got.Outcome, got.RetryAfter, got.Reason, tc.want, tc.after)
			}
		})
	}
}

func TestJavaLayout(t *testing.T) {
	ts := time.Date(2026, 3, 4, 5, 6, 7, 890e6, time.UTC)
	for _, tc := range []struct{ java, want string }{
		{"yyyy-MM-dd HH:mm:ss", "2026-03-04 05:06:07"},
		{"yy-MM-dd hh:mm:ss", "26-03-04 05:06:07"},
		{"yyyyMMddHHmmss.SSS", "20260304050607.890"},
		{"yyyy-MM-dd'T'HH:mm:ss", "2026-03-04T05:06:07"},
	} {
		layout, err := javaLayout(tc.java)
		if err != nil {
			t.Fatalf("%s: %v", tc.java, err)
		}
		if got := ts.Format(layout); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.java, got, tc.want)
		}
	}
	if _, err := javaLayout("yyyy-QQ"); err == nil {
		t.Errorf("unknown letter accepted")
	}
}

func TestParseExpiresIn(t *testing.T) {
	for in, want := range map[string]int64{`1209600`: 1209600, `"1209600"`: 1209600, `3600.0`: 3600} {
		if got, ok := parseExpiresIn(json.RawMessage(in)); !ok || got != want {
			t.Errorf("parseExpiresIn(%s) = %d, %v; want %d", in, got, ok, want)
		}
	}
	if _, ok := parseExpiresIn(json.RawMessage(`"soon"`)); ok {
		t.Errorf("non-numeric expires_in accepted")
	}
}

// TestInflightUploadFinishesAtShutdown: a request already sent when the
// agent stops is given time to be answered, so an accepted record is not
// left pending to be uploaded again at the next start.
func TestInflightUploadFinishesAtShutdown(t *testing.T) {
	p := newPlatform(t)
	arrived := make(chan struct{}, 1)
	p.setScan(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		time.Sleep(100 * time.Millisecond)
		io.WriteString(w, `{"type":"success","errorFields":[]}`)
	})
	r := newRig(t, p, "", func(o *Options) { o.Concurrency = 1 })
	r.enqueue(t, 1)
	r.start()
	<-arrived
	r.stop() // cancels while the platform is still answering
	if s := r.stats(t); s.Delivered != 1 || s.Pending != 0 {
		t.Fatalf("stats after shutdown = %+v; want the in-flight record delivered", s)
	}
}

func TestRetryAfterBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"7": 7 * time.Second, "99999999999999": time.Hour, "-5": 0, "soon": 0,
		now.Add(3 * time.Hour).Format(http.TimeFormat): time.Hour,
	} {
		if got := retryAfter(in, now); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

// TestTriesCounted: every failed send is counted on the record (Tries), not
// only the platform errors that count against max_error_attempts: a record
// the platform has been failing for a while never shows 0.
func TestTriesCounted(t *testing.T) {
	p := newPlatform(t)
	var hits atomic.Int64
	p.setScan(func(w http.ResponseWriter, r *http.Request) { hits.Add(1); w.WriteHeader(503) })
	r := newRig(t, p, "", func(o *Options) { o.Concurrency = 1 })
	r.enqueue(t, 1)
	r.start()
	waitFor(t, "three failed sends noted", func() bool {
		items, _ := r.q.List(queue.StatePending, 0, 1)
		return len(items) == 1 && items[0].Record.Tries >= 3
	})
	r.stop()
	items, _ := r.q.List(queue.StatePending, 0, 1)
	rec := items[0].Record
	if rec.Attempts != 0 || rec.Tries < 3 || int64(rec.Tries) > hits.Load() {
		t.Errorf("attempts %d, tries %d after %d sends; want 0 counted and every send tried", rec.Attempts, rec.Tries, hits.Load())
	}
}
