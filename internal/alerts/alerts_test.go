package alerts

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"scanagent/internal/devserver"
	"scanagent/internal/queue"
	"scanagent/internal/redact"
	"scanagent/internal/upload"
)

const (
	appID  = "01"
	client = "client-1"
	secret = "s3cret-value"
)

var (
	t0    = time.Date(2026, 3, 2, 1, 0, 0, 0, time.UTC) // 09:00 in Shanghai
	terms = []Terminal{{Reader: "gate-in", TermName: "东湖食堂 1 号机", TermSn: "ZAFU-0001"},
		{Reader: "gate-out", TermName: "东湖食堂 2 号机", TermSn: "ZAFU-0002"}}
)

// fixture is a real queue, a devserver and the agent's kind of token
// source, with a driven clock.
type fixture struct {
	t      *testing.T
	q      *queue.Queue
	path   string
	srv    *devserver.Server
	url    string
	tokens *upload.TokenSource
	mu     sync.Mutex
	now    time.Time
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, now: t0, path: filepath.Join(t.TempDir(), "queue.db")}
	var err error
	if f.q, err = queue.Open(f.path, queue.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.q.Close() })
	f.srv, err = devserver.New(devserver.Options{AppID: appID, ClientID: client, ClientSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(f.srv.Handler())
	t.Cleanup(func() { f.srv.Close(); ts.Close() })
	f.url = ts.URL
	f.tokens = upload.NewTokenSource(ts.Client(), ts.URL+devserver.TokenPath, client, secret, f.q, upload.TokenOptions{})
	return f
}

func (f *fixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fixture) at(d time.Duration) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = t0.Add(d)
	return f.now
}

func (f *fixture) engine(opts Options, src ...Source) *Engine {
	opts.URL = f.url + devserver.MsgPath
	opts.AppID = appID
	if opts.To == nil {
		opts.To = []string{"20121032"}
	}
	opts.Terminals = terms
	opts.Now = f.clock
	opts.Location, _ = time.LoadLocation("Asia/Shanghai")
	return New(f.q, f.tokens, opts, src...)
}

// step checks at d and sends; it returns the messages the platform got.
func (f *fixture) step(e *Engine, d time.Duration) []devserver.Message {
	f.t.Helper()
	before := len(f.srv.Messages())
	if err := e.Check(context.Background(), f.at(d)); err != nil {
		f.t.Fatalf("Check at %v: %v", d, err)
	}
	if err := e.Flush(context.Background()); err != nil {
		f.t.Fatalf("Flush at %v: %v", d, err)
	}
	return f.srv.Messages()[before:]
}

// fact is one switchable fact behind a source.
type fact struct {
	mu     sync.Mutex
	on     bool
	since  time.Time
	detail string
}

func (x *fact) set(on bool, since time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.on, x.since = on, since
}

func (x *fact) get() (time.Time, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.since, x.on
}

// Every condition starts with one message naming the terminal, the
// condition, since when and the fix; reminds every resend; clears with one
// message; all with one token fetch.
func TestConditionsStartRemindClear(t *testing.T) {
	const resend = 24 * time.Hour
	cases := []struct {
		name   string
		source func(x *fact) Source
		title  string
		term   string // a terminal name the text must carry
		// lag is how long after the fact turns on the condition starts.
		lag time.Duration
	}{
		{"reader down", func(x *fact) Source { return ReaderSource("gate-out", x.get, 10*time.Minute) }, "读卡器断开", "ZAFU-0002", 10 * time.Minute},
		{"backlog", func(x *fact) Source {
			return BacklogSource(func() (*time.Time, error) {
				s, on := x.get()
				if !on {
					return nil, nil
				}
				return &s, nil
			}, time.Hour)
		}, "积压", "ZAFU-0001", time.Hour},
		{"dead", func(x *fact) Source {
			return DeadSource(func() (uint64, error) {
				if _, on := x.get(); on {
					return 3, nil
				}
				return 0, nil
			})
		}, "拒收", "ZAFU-0002", 0},
		{"credentials", func(x *fact) Source { return CredentialsSource(x.get) }, "凭据", "ZAFU-0001", 0},
		{"hold", func(x *fact) Source {
			return HoldSource(func() (time.Time, bool, string) {
				s, on := x.get()
				return s, on, "errorFields appId → [platform] app_id"
			})
		}, "暂停", "ZAFU-0001", 0},
		{"clock skew", func(x *fact) Source {
			return ClockSkewSource(func() (time.Duration, bool) {
				if _, on := x.get(); on {
					return 5 * time.Minute, true
				}
				return time.Second, true
			}, 2*time.Minute)
		}, "时钟", "ZAFU-0001", 0},
		{"queue full", func(x *fact) Source {
			return QueueFullSource(func() (uint64, error) {
				if _, on := x.get(); on {
					return 900, nil
				}
				return 899, nil
			}, 1000)
		}, "队列将满", "ZAFU-0001", 0},
		{"disk full", func(x *fact) Source {
			return DiskSource(func() (uint64, uint64, error) {
				if _, on := x.get(); on {
					return 50 << 20, 100 << 30, nil
				}
				return 10 << 30, 100 << 30, nil
			}, func() string { return "" })
		}, "磁盘", "ZAFU-0001", 0},
		{"disk write error", func(x *fact) Source {
			return DiskSource(func() (uint64, uint64, error) { return 10 << 30, 100 << 30, nil },
				func() string {
					if _, on := x.get(); on {
						return "no space left on device"
					}
					return ""
				})
		}, "写入失败", "ZAFU-0001", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			x := &fact{}
			e := f.engine(Options{Resend: resend, To: []string{"20121032", "20150007"}}, c.source(x))
			if m := f.step(e, 0); len(m) != 0 {
				t.Fatalf("nothing wrong, yet sent %+v", m)
			}
			x.set(true, t0.Add(time.Minute))
			if c.lag > 0 {
				if m := f.step(e, time.Minute+c.lag-time.Second); len(m) != 0 {
					t.Fatalf("before the threshold: sent %+v", m)
				}
			}
			start := time.Minute + c.lag
			m := f.step(e, start)
			if len(m) != 2 || m[0].Xgh != "20121032" || m[1].Xgh != "20150007" || m[0].Content != m[1].Content {
				t.Fatalf("start: want one message to each of 2 people, got %+v", m)
			}
			text := m[0].Content
			for _, want := range []string{"告警", c.title, c.term, "处理："} {
				if !strings.Contains(text, want) {
					t.Errorf("start text lacks %q: %s", want, text)
				}
			}
			if m[0].MessageType != "5" || m[0].AppID != appID {
				t.Errorf("message fields: %+v", m[0])
			}
			if m := f.step(e, start+resend-time.Second); len(m) != 0 {
				t.Fatalf("before resend: sent %+v", m)
			}
			m = f.step(e, start+resend)
			if len(m) != 2 || !strings.Contains(m[0].Content, "仍未恢复") {
				t.Fatalf("reminder: %+v", m)
			}
			x.set(false, time.Time{})
			m = f.step(e, start+resend+time.Hour)
			if len(m) != 2 || !strings.Contains(m[0].Content, "恢复") || !strings.Contains(m[0].Content, "已于 2026-03-03") {
				t.Fatalf("cleared: %+v", m)
			}
			if m := f.step(e, start+2*resend+time.Hour); len(m) != 0 {
				t.Fatalf("after clearing: sent %+v", m)
			}
			if n := f.tokens.Fetches(); n != 1 {
				t.Errorf("token fetches = %d, want 1", n)
			}
		})
	}
}

// The reader's text names its own terminal and the real start time (when
// the port closed, not when the threshold passed).
func TestReaderDownNamesTerminalAndSince(t *testing.T) {
	f := newFixture(t)
	x := &fact{}
	e := f.engine(Options{}, ReaderSource("gate-in", x.get, 10*time.Minute))
	x.set(true, t0)
	m := f.step(e, 10*time.Minute)
	if len(m) != 1 {
		t.Fatalf("got %+v", m)
	}
	for _, want := range []string{"东湖食堂 1 号机", "ZAFU-0001", "gate-in", "自 2026-03-02 09:00:00 起", "已持续 10 分钟"} {
		if !strings.Contains(m[0].Content, want) {
			t.Errorf("text lacks %q: %s", want, m[0].Content)
		}
	}
	if strings.Contains(m[0].Content, "ZAFU-0002") {
		t.Errorf("names the other terminal: %s", m[0].Content)
	}
}

// An episode during an outage is kept (across a restart too) and sent when
// the platform is back, with its real times; nothing is lost or doubled.
func TestOutageEpisodeSentAfter(t *testing.T) {
	f := newFixture(t)
	x := &fact{}
	e := f.engine(Options{}, CredentialsSource(x.get))
	if _, err := f.tokens.Token(context.Background()); err != nil { // a token while the platform is up
		t.Fatal(err)
	}
	f.srv.SetMode(devserver.ModeDown)
	x.set(true, t0.Add(time.Minute))
	if err := e.Check(context.Background(), f.at(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := e.Flush(context.Background()); err == nil {
		t.Fatal("Flush during the outage reported success")
	}
	x.set(false, time.Time{})
	if err := e.Check(context.Background(), f.at(30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	// The agent restarts: a new engine on the same queue file.
	f.q.Close()
	var err error
	if f.q, err = queue.Open(f.path, queue.Options{}); err != nil {
		t.Fatal(err)
	}
	f.tokens = upload.NewTokenSource(http.DefaultClient, f.url+devserver.TokenPath, client, secret, f.q, upload.TokenOptions{})
	e = f.engine(Options{}, CredentialsSource(x.get))
	f.srv.SetMode(devserver.ModeOK)
	m := f.step(e, time.Hour)
	if len(m) != 2 {
		t.Fatalf("after the outage: %+v", m)
	}
	if !strings.Contains(m[0].Content, "告警") || !strings.Contains(m[0].Content, "自 2026-03-02 09:01:00 起") ||
		!strings.Contains(m[1].Content, "已于 2026-03-02 09:30:00 恢复") {
		t.Fatalf("real times lost: %q / %q", m[0].Content, m[1].Content)
	}
	if m := f.step(e, 2*time.Hour); len(m) != 0 {
		t.Fatalf("sent again: %+v", m)
	}
	if n := f.srv.Stats().TokenFetches; n != 1 {
		t.Errorf("platform issued %d tokens, want 1 (the stored one is reused)", n)
	}
}

// No message carries an ID number, even when the detail quotes one.
func TestNoIDNumberInAlerts(t *testing.T) {
	f := newFixture(t)
	const id = "33010219900101123X"
	e := f.engine(Options{}, HoldSource(func() (time.Time, bool, string) {
		return t0, true, "errorFields idCard, e.g. " + id
	}))
	m := f.step(e, 0)
	if len(m) != 1 {
		t.Fatalf("got %+v", m)
	}
	if strings.Contains(m[0].Content, id) || redact.IDNumbers(m[0].Content) != m[0].Content {
		t.Fatalf("ID number in the alert: %s", m[0].Content)
	}
}

// A refused message (status 0) is dropped and counted, not retried forever;
// a bad token is re-fetched once (single-flight) and the message sent.
func TestRefusedAndBadToken(t *testing.T) {
	f := newFixture(t)
	x := &fact{}
	e := f.engine(Options{MessageType: "1"}, CredentialsSource(x.get)) // SMS without messageTo: refused
	x.set(true, t0)
	if m := f.step(e, 0); len(m) != 0 {
		t.Fatalf("accepted %+v", m)
	}
	if sent, refused, _ := e.Counts(); sent != 0 || refused != 1 {
		t.Fatalf("counts sent %d refused %d", sent, refused)
	}
	if out, _ := f.q.AlertOutbox(10); len(out) != 0 {
		t.Fatalf("refused message still queued: %d", len(out))
	}

	e2 := f.engine(Options{}, CredentialsSource(x.get))
	f.srv.SetMode(devserver.ModeExpireToken)
	x.set(false, time.Time{})
	// A new engine on the same queue knows the stored condition: its
	// clearing is sent, through one re-fetch of the expired token.
	m := f.step(e2, time.Minute)
	if len(m) != 1 || !strings.Contains(m[0].Content, "恢复") {
		t.Fatalf("after expiry: %+v", m)
	}
	if n := f.tokens.Fetches(); n != 2 {
		t.Errorf("token fetches = %d, want 2 (one re-fetch after the expiry)", n)
	}
}

// TestForbiddenIsRefusedNotBadToken (upload review 4): a 403 from msgsend
// without invalid_token / invalid_grant (this app may not send messages)
// refuses the message: it is dropped and counted once, the token (the
// uploader's too) is kept: no re-fetch on this flush nor the next.
func TestForbiddenIsRefusedNotBadToken(t *testing.T) {
	f := newFixture(t)
	var n int
	var mu sync.Mutex
	msg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`{"error":"access_denied","error_description":"this client may not send messages"}`))
	}))
	t.Cleanup(msg.Close)
	x := &fact{}
	e := f.engine(Options{}, CredentialsSource(x.get))
	e.opts.URL = msg.URL + devserver.MsgPath
	x.set(true, t0)
	for i, d := range []time.Duration{0, time.Minute} {
		if i == 1 {
			x.set(false, time.Time{}) // a second message: the clearing
		}
		if err := e.Check(context.Background(), f.at(d)); err != nil {
			t.Fatal(err)
		}
		if err := e.Flush(context.Background()); err != nil {
			t.Fatalf("flush %d: %v", i, err)
		}
	}
	mu.Lock()
	calls := n
	mu.Unlock()
	if sent, refused, failed := e.Counts(); sent != 0 || refused != 2 || failed != 0 || calls != 2 {
		t.Fatalf("sent %d refused %d failed %d in %d calls; want 2 refused, one call each", sent, refused, failed, calls)
	}
	if out, _ := f.q.AlertOutbox(10); len(out) != 0 {
		t.Fatalf("refused messages still queued: %d", len(out))
	}
	if got := f.tokens.Fetches(); got != 1 {
		t.Fatalf("token fetches = %d, want 1 (a 403 without invalid_token keeps the token)", got)
	}
}

// Alerts off: nothing is checked, stored or sent.
func TestOff(t *testing.T) {
	f := newFixture(t)
	x := &fact{}
	x.set(true, t0)
	e := f.engine(Options{To: []string{}}, CredentialsSource(x.get))
	if m := f.step(e, 0); len(m) != 0 {
		t.Fatalf("sent %+v", m)
	}
	if _, err := e.Test(context.Background()); err == nil {
		t.Fatal("Test with nobody to tell succeeded")
	}
}

// Test sends one message to each person at once.
func TestTestMessage(t *testing.T) {
	f := newFixture(t)
	e := f.engine(Options{To: []string{"1", "2"}})
	res, err := e.Test(context.Background())
	if err != nil || len(res) != 2 || !res[0].Sent || !res[1].Sent {
		t.Fatalf("%+v, %v", res, err)
	}
	if m := f.srv.Messages(); len(m) != 2 || !strings.Contains(m[0].Content, "测试") {
		t.Fatalf("%+v", m)
	}
}

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		status int
		body   string
		want   Outcome
	}{
		{200, `{"status":1,"message":"成功"}`, Sent},
		{200, `{"status":"1","message":"成功"}`, Sent},
		{200, `{"status":0,"message":"参数错误","errorFields":"messageTo"}`, Refused},
		{200, `{"type":"success"}`, Transient},
		{200, `<html>portal</html>`, Transient},
		{401, `{"error":"invalid_grant"}`, BadToken},
		{403, ``, Refused},
		{403, `{"error":"access_denied"}`, Refused},
		{403, `{"error":"invalid_token"}`, BadToken},
		{403, `{"error":"invalid_grant","error_description":"Access token is expired"}`, BadToken},
		{200, `{"error":"invalid_token"}`, BadToken},
		{400, `{"status":0,"message":"bad"}`, Refused},
		{422, ``, Refused},
		{404, ``, Transient},
		{405, ``, Transient},
		{302, ``, Transient},
		{429, ``, Transient},
		{503, `<html>`, Transient},
	} {
		if got := Classify(c.status, []byte(c.body)); got.Outcome != c.want {
			t.Errorf("%d %s: %v (%s), want %v", c.status, c.body, got.Outcome, got.Reason, c.want)
		}
	}
	if r := Classify(200, []byte(`{"status":0,"message":"参数错误","errorFields":"messageTo"}`)); !strings.Contains(r.Reason, "messageTo") {
		t.Errorf("reason %q lacks the fields", r.Reason)
	}
}

// When the alerts cannot be stored (the disk is full: the very thing to
// tell), the message is still sent, from memory.
func TestSentWhenNotStorable(t *testing.T) {
	f := newFixture(t)
	if _, err := f.tokens.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	x := &fact{}
	e := f.engine(Options{}, DiskSource(func() (uint64, uint64, error) { return 1 << 20, 100 << 30, nil },
		func() string { return "no space left on device" }))
	x.set(true, t0)
	if m := f.step(e, 0); len(m) != 1 { // stored and sent
		t.Fatalf("got %+v", m)
	}
	f.q.Close() // every write fails from now on
	e2 := f.engine(Options{}, CredentialsSource(x.get))
	e2.states = map[string]state{} // loaded before the file became unwritable
	if err := e2.Check(context.Background(), f.at(time.Minute)); err == nil {
		t.Fatal("Check did not report the store failure")
	}
	e2.Flush(context.Background()) // the outbox cannot be read either
	if m := f.srv.Messages(); len(m) != 2 || !strings.Contains(m[1].Content, "凭据") {
		t.Fatalf("messages: %+v", m)
	}
}

// A reader removed from the configuration leaves no condition behind.
func TestRemovedReaderForgotten(t *testing.T) {
	f := newFixture(t)
	x := &fact{}
	x.set(true, t0)
	e := f.engine(Options{}, ReaderSource("gate-in", x.get, time.Minute))
	if m := f.step(e, time.Hour); len(m) != 1 {
		t.Fatalf("got %+v", m)
	}
	opts := Options{}
	e2 := f.engine(opts)
	e2.opts.Terminals = terms[1:] // gate-in is gone
	if err := e2.Check(context.Background(), f.at(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.q.AlertStates(); len(st) != 0 || len(e2.Active()) != 0 {
		t.Fatalf("states %v, active %v", st, e2.Active())
	}
}
