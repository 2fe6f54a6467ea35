package devserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"scanagent/internal/crypto"
)

const (
	testAppID  = "01"
	testClient = "client-1"
	testSecret = "s3cret-value"
	testID     = "33010219900101123X"
	testCipher = "GGX7LbvctIvkW/1lTUmQr2Od6uzbfHL8iBlSg+FOM78=" // testID, appId 01, ECB base64
)

// clock is a settable Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	srv   *Server
	ts    *httptest.Server
	clock *clock
	logs  *bytes.Buffer // slog output
	recs  *bytes.Buffer // Options.Log
}

// newEnv starts a devserver; edit adjusts the options before New.
func newEnv(t *testing.T, edit func(*Options)) *env {
	t.Helper()
	e := &env{
		clock: &clock{t: time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)},
		logs:  &bytes.Buffer{},
		recs:  &bytes.Buffer{},
	}
	opts := Options{
		AppID:        testAppID,
		ClientID:     testClient,
		ClientSecret: testSecret,
		Log:          e.recs,
		Now:          e.clock.Now,
		Rand:         rand.New(rand.NewPCG(1, 2)),
		Logger:       slog.New(slog.NewTextHandler(&lockedWriter{w: e.logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if edit != nil {
		edit(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	e.ts = httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		srv.Close()
		e.ts.Close()
		// Nothing secret may have been logged or written.
		for _, out := range []string{e.logs.String(), e.recs.String()} {
			for _, secret := range []string{testID, testSecret, "1101051990010112"} {
				if strings.Contains(out, secret) {
					t.Errorf("output contains %q:\n%s", secret, out)
				}
			}
		}
	})
	return e
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// noRedirect is a client that does not follow redirects.
var noRedirect = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       5 * time.Second,
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(tb testing.TB) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		tb.Fatalf("body %q: %v", r.body, err)
	}
	return m
}

func do(tb testing.TB, method, u, contentType, body string) (response, error) {
	tb.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{resp.StatusCode, resp.Header, b}, nil
}

func mustDo(tb testing.TB, method, u, contentType, body string) response {
	tb.Helper()
	r, err := do(tb, method, u, contentType, body)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func tokenBody(grant, id, secret string) string {
	b, _ := json.Marshal(map[string]string{"grant_type": grant, "client_id": id, "client_secret": secret})
	return string(b)
}

func (e *env) fetchToken(tb testing.TB) string {
	tb.Helper()
	r := mustDo(tb, "POST", e.ts.URL+TokenPath, "application/json", tokenBody("client_credentials", testClient, testSecret))
	if r.status != 200 {
		tb.Fatalf("token: got %d %s, want 200", r.status, r.body)
	}
	tok, _ := r.json(tb)["access_token"].(string)
	if tok == "" {
		tb.Fatalf("token: no access_token in %s", r.body)
	}
	return tok
}

func validParams() url.Values {
	return url.Values{
		"termName": {"东湖食堂 1 号机"},
		"termSn":   {"ZAFU-0001"},
		"name":     {"张三"},
		"xgh":      {"2019001"},
		"idCard":   {testCipher},
		"userType": {"学生"},
		"scanDate": {"2025-03-01 07:59:58"},
		"appId":    {testAppID},
	}
}

// scan posts params as a form body, access_token in the query string.
func (e *env) scan(tb testing.TB, token string, params url.Values) response {
	tb.Helper()
	return mustDo(tb, "POST", e.ts.URL+ScanPath+"?access_token="+url.QueryEscape(token),
		"application/x-www-form-urlencoded", params.Encode())
}

func wantSuccess(tb testing.TB, r response) {
	tb.Helper()
	if r.status != 200 {
		tb.Fatalf("got %d %s, want 200", r.status, r.body)
	}
	m := r.json(tb)
	if m["type"] != "success" || m["code"] != "1" || m["content"] != "成功" || m["anchor"] != "undefined" {
		tb.Errorf("got %s, want the success envelope", r.body)
	}
	if ef, ok := m["errorFields"].([]any); !ok || len(ef) != 0 {
		tb.Errorf("errorFields: got %v, want []", m["errorFields"])
	}
	if v, ok := m["data"]; !ok || v != nil {
		tb.Errorf("data: got %v, want null", v)
	}
}

func wantRefused(tb testing.TB, r response, fields ...string) {
	tb.Helper()
	if r.status != 200 {
		tb.Fatalf("got %d %s, want 200", r.status, r.body)
	}
	m := r.json(tb)
	if m["type"] != "error" || m["code"] != "0" || m["anchor"] != "undefined" {
		tb.Errorf("got %s, want the error envelope", r.body)
	}
	var got []string
	ef, _ := m["errorFields"].([]any)
	for _, f := range ef {
		s, _ := f.(string)
		got = append(got, s)
	}
	if !slices.Equal(got, fields) {
		tb.Errorf("errorFields: got %v, want %v (%s)", got, fields, m["content"])
	}
}

func wantInvalidGrant(tb testing.TB, r response, status int) {
	tb.Helper()
	if r.status != status {
		tb.Fatalf("got %d %s, want %d", r.status, r.body, status)
	}
	m := r.json(tb)
	if m["error"] != "invalid_grant" || m["error_description"] != "Access token is expired" {
		tb.Errorf("got %s, want invalid_grant", r.body)
	}
}

func TestNew(t *testing.T) {
	good := Options{AppID: "01", ClientID: "c", ClientSecret: "s"}
	for _, tc := range []struct {
		name string
		edit func(*Options)
	}{
		{"no app id", func(o *Options) { o.AppID = "" }},
		{"long app id", func(o *Options) { o.AppID = "12345678901234567" }},
		{"no client id", func(o *Options) { o.ClientID = "" }},
		{"no secret", func(o *Options) { o.ClientSecret = "" }},
		{"fail rate", func(o *Options) { o.FailRate = 1.5 }},
		{"negative ttl", func(o *Options) { o.TokenTTL = -time.Second }},
		{"crypto mode", func(o *Options) { o.Crypto.Mode = "gcm" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := good
			tc.edit(&o)
			if _, err := New(o); err == nil {
				t.Fatal("got nil error, want one")
			}
		})
	}
	s, err := New(good)
	if err != nil {
		t.Fatal(err)
	}
	if s.Mode() != ModeOK {
		t.Errorf("mode: got %v, want ok", s.Mode())
	}
}

func TestToken(t *testing.T) {
	e := newEnv(t, nil)
	u := e.ts.URL + TokenPath
	good := tokenBody("client_credentials", testClient, testSecret)

	for _, tc := range []struct {
		name, method, ctype, body string
		status                    int
		errCode                   string
	}{
		{"GET", "GET", "", "", 405, "invalid_request"},
		{"form content type", "POST", "application/x-www-form-urlencoded", good, 415, "invalid_request"},
		{"no content type", "POST", "", good, 415, "invalid_request"},
		{"not json", "POST", "application/json", "grant_type=client_credentials", 400, "invalid_request"},
		{"trailing comma", "POST", "application/json", `{"grant_type":"client_credentials","client_id":"client-1","client_secret":"s3cret-value",}`, 400, "invalid_request"},
		{"number values", "POST", "application/json", `{"grant_type":"client_credentials","client_id":1,"client_secret":2}`, 400, "invalid_request"},
		{"no grant type", "POST", "application/json", `{"client_id":"client-1","client_secret":"s3cret-value"}`, 400, "invalid_request"},
		{"wrong grant type", "POST", "application/json", tokenBody("client_edentials", testClient, testSecret), 400, "unsupported_grant_type"},
		{"wrong secret", "POST", "application/json", tokenBody("client_credentials", testClient, "nope"), 401, "invalid_client"},
		{"wrong client", "POST", "application/json", tokenBody("client_credentials", "other", testSecret), 401, "invalid_client"},
		{"no secret", "POST", "application/json", `{"grant_type":"client_credentials","client_id":"client-1"}`, 401, "invalid_client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustDo(t, tc.method, u, tc.ctype, tc.body)
			if r.status != tc.status {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tc.status)
			}
			if got := r.json(t)["error"]; got != tc.errCode {
				t.Errorf("error: got %v, want %s", got, tc.errCode)
			}
		})
	}
	st := e.srv.Stats()
	if st.TokenRefused != 11 || st.BadClient != 3 || st.TokenFetches != 0 {
		t.Errorf("stats: got refused %d, bad client %d, fetches %d; want 11, 3, 0", st.TokenRefused, st.BadClient, st.TokenFetches)
	}

	// Success; expires_in alternates between a number and a string.
	var tokens []string
	for i := range 4 {
		r := mustDo(t, "POST", u, "application/json; charset=utf-8", good)
		if r.status != 200 {
			t.Fatalf("got %d %s, want 200", r.status, r.body)
		}
		var resp struct {
			AccessToken string          `json:"access_token"`
			ExpiresIn   json.RawMessage `json:"expires_in"`
			Scope       string          `json:"scope"`
			TokenType   string          `json:"token_type"`
		}
		if err := json.Unmarshal(r.body, &resp); err != nil {
			t.Fatal(err)
		}
		want := `1209600`
		if i%2 == 1 {
			want = `"1209600"`
		}
		if string(resp.ExpiresIn) != want {
			t.Errorf("fetch %d: expires_in got %s, want %s", i, resp.ExpiresIn, want)
		}
		if resp.Scope != "base_api" || resp.TokenType != "Bearer" {
			t.Errorf("got scope %q, token_type %q; want base_api, Bearer", resp.Scope, resp.TokenType)
		}
		if len(resp.AccessToken) != 32 || strings.Trim(resp.AccessToken, tokenAlphabet) != "" {
			t.Errorf("access_token %q: want 32 letters and digits", resp.AccessToken)
		}
		if slices.Contains(tokens, resp.AccessToken) {
			t.Errorf("token %d repeats an earlier one", i)
		}
		tokens = append(tokens, resp.AccessToken)
		if strings.Contains(e.logs.String(), resp.AccessToken) {
			t.Errorf("token logged")
		}
	}
	if got := e.srv.Stats().TokenFetches; got != 4 {
		t.Errorf("TokenFetches: got %d, want 4", got)
	}
}

func TestTokenInvalidationAndExpiry(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.TokenTTL = time.Hour })
	first := e.fetchToken(t)
	wantSuccess(t, e.scan(t, first, validParams()))

	second := e.fetchToken(t)
	wantInvalidGrant(t, e.scan(t, first, validParams()), 403) // superseded
	wantSuccess(t, e.scan(t, second, validParams()))

	e.clock.Add(time.Hour - time.Second)
	wantSuccess(t, e.scan(t, second, validParams()))
	e.clock.Add(time.Second)
	wantInvalidGrant(t, e.scan(t, second, validParams()), 401) // expired

	third := e.fetchToken(t)
	wantSuccess(t, e.scan(t, third, validParams()))
	wantInvalidGrant(t, e.scan(t, "", validParams()), 403)
	wantInvalidGrant(t, e.scan(t, "x"+third[1:], validParams()), 403)

	st := e.srv.Stats()
	if st.Accepted != 4 || st.BadToken != 4 || st.ScanCalls != 8 {
		t.Errorf("got accepted %d, bad token %d, calls %d; want 4, 4, 8", st.Accepted, st.BadToken, st.ScanCalls)
	}
	if n := len(e.srv.Records()); n != 4 {
		t.Errorf("got %d records, want 4", n)
	}
}

func TestTokenInBodyNotAccepted(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.fetchToken(t)
	p := validParams()
	p.Set("access_token", tok)
	r := mustDo(t, "POST", e.ts.URL+ScanPath, "application/x-www-form-urlencoded", p.Encode())
	wantInvalidGrant(t, r, 403)
	if len(e.srv.Records()) != 0 {
		t.Error("record accepted with the token in the body")
	}
}

func TestScanAccepted(t *testing.T) {
	for _, tc := range []struct {
		name string
		send func(e *env, tok string, p url.Values) response
	}{
		{"form body", func(e *env, tok string, p url.Values) response { return e.scan(t, tok, p) }},
		{"form body with charset", func(e *env, tok string, p url.Values) response {
			return mustDo(t, "POST", e.ts.URL+ScanPath+"?access_token="+tok, "application/x-www-form-urlencoded; charset=UTF-8", p.Encode())
		}},
		{"query string", func(e *env, tok string, p url.Values) response {
			p.Set("access_token", tok)
			return mustDo(t, "POST", e.ts.URL+ScanPath+"?"+p.Encode(), "", "")
		}},
		{"split between query and body", func(e *env, tok string, p url.Values) response {
			q := url.Values{"access_token": {tok}, "termName": p["termName"], "termSn": p["termSn"]}
			p.Del("termName")
			p.Del("termSn")
			return mustDo(t, "POST", e.ts.URL+ScanPath+"?"+q.Encode(), "application/x-www-form-urlencoded", p.Encode())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			tok := e.fetchToken(t)
			wantSuccess(t, tc.send(e, tok, validParams()))
			recs := e.srv.Records()
			if len(recs) != 1 {
				t.Fatalf("got %d records, want 1", len(recs))
			}
			want := Record{
				TermName: "东湖食堂 1 号机", TermSn: "ZAFU-0001", Name: "张三", Xgh: "2019001",
				IDCard: testCipher, IDCardPlain: testID, IDCardMasked: "330***********123X",
				UserType: "学生", ScanDate: "2025-03-01 07:59:58", AppID: testAppID,
				ReceivedAt: e.clock.Now(),
			}
			if recs[0] != want {
				t.Errorf("got %+v\nwant %+v", recs[0], want)
			}
		})
	}
}

func TestScanRequiredFields(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.fetchToken(t)
	for _, f := range ScanFields {
		for _, v := range []string{"", " \t"} {
			p := validParams()
			if v == "" {
				p.Del(f)
			} else {
				p.Set(f, v)
			}
			t.Run(f+"/"+strings.TrimSpace(v), func(t *testing.T) {
				wantRefused(t, e.scan(t, tok, p), f)
			})
		}
	}
	wantRefused(t, e.scan(t, tok, url.Values{}), ScanFields...)
	if n := len(e.srv.Records()); n != 0 {
		t.Errorf("got %d records, want 0", n)
	}
	st := e.srv.Stats()
	if want := 2*len(ScanFields) + 1; st.RefusedCalls != want || st.Refused[RefusedMissing] != want {
		t.Errorf("got refused calls %d, missing %d; want %d", st.RefusedCalls, st.Refused[RefusedMissing], want)
	}
}

func TestScanFieldChecks(t *testing.T) {
	c01, _ := crypto.New("01", crypto.Options{})
	c02, _ := crypto.New("02", crypto.Options{})
	enc := func(c *crypto.Cipher, s string) string {
		out, err := c.Encrypt(s)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	cbc, _ := crypto.New("01", crypto.Options{Mode: "cbc"})

	for _, tc := range []struct {
		name   string
		field  string
		value  string
		fields []string // errorFields; nil = accepted
		class  string
	}{
		{"wrong appId", "appId", "02", []string{"appId"}, RefusedAppID},
		{"padded appId", "appId", "0000000000000001", []string{"appId"}, RefusedAppID},
		{"idCard not base64", "idCard", "not base64!", []string{"idCard"}, RefusedIDCard},
		{"idCard plaintext", "idCard", testID, []string{"idCard"}, RefusedIDCard},
		{"idCard other key", "idCard", enc(c02, testID), []string{"idCard"}, RefusedIDCard},
		{"idCard cbc", "idCard", enc(cbc, testID), []string{"idCard"}, RefusedIDCard},
		{"idCard hex", "idCard", "1865fb2dbbdcb48be45bfd654d4990af639deaecdb7c72fc88195283e14e33bf", []string{"idCard"}, RefusedIDCard},
		{"idCard not an ID", "idCard", enc(c01, "hello"), []string{"idCard"}, RefusedIDCard},
		{"idCard 17 digits", "idCard", enc(c01, "33010219900101123"), []string{"idCard"}, RefusedIDCard},
		{"idCard X inside", "idCard", enc(c01, "3301021990010112X3"), []string{"idCard"}, RefusedIDCard},
		{"idCard lower x", "idCard", enc(c01, "33010219900101123x"), []string{"idCard"}, RefusedIDCard},
		{"idCard 15 digits", "idCard", enc(c01, "330102900101123"), nil, ""},
		{"idCard 18 digits", "idCard", enc(c01, "330102199001011234"), nil, ""},
		{"scanDate RFC 3339", "scanDate", "2025-03-01T07:59:58Z", []string{"scanDate"}, RefusedScanDate},
		{"scanDate short year", "scanDate", "25-03-01 07:59:58", []string{"scanDate"}, RefusedScanDate},
		{"scanDate no seconds", "scanDate", "2025-03-01 07:59", []string{"scanDate"}, RefusedScanDate},
		{"scanDate one-digit month", "scanDate", "2025-3-01 07:59:58", []string{"scanDate"}, RefusedScanDate},
		{"scanDate millis", "scanDate", "2025-03-01 07:59:58.123", []string{"scanDate"}, RefusedScanDate},
		{"scanDate Feb 30", "scanDate", "2025-02-30 07:59:58", []string{"scanDate"}, RefusedScanDate},
		{"termName not UTF-8", "termName", "\xb6\xab\xba\xfe", []string{"termName"}, RefusedEncoding},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			tok := e.fetchToken(t)
			p := validParams()
			p.Set(tc.field, tc.value)
			r := e.scan(t, tok, p)
			if tc.fields == nil {
				wantSuccess(t, r)
				return
			}
			wantRefused(t, r, tc.fields...)
			if got := e.srv.Stats().Refused[tc.class]; got != 1 {
				t.Errorf("Refused[%s]: got %d, want 1", tc.class, got)
			}
			if bytes.Contains(r.body, []byte(testID)) {
				t.Errorf("answer %s quotes the ID number", r.body)
			}
		})
	}
}

func TestScanSeveralProblems(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.fetchToken(t)
	p := validParams()
	p.Del("xgh")
	p.Set("appId", "02")
	p.Set("scanDate", "yesterday")
	wantRefused(t, e.scan(t, tok, p), "xgh", "appId", "scanDate")
	st := e.srv.Stats()
	if st.RefusedCalls != 1 || st.Refused[RefusedMissing] != 1 || st.Refused[RefusedAppID] != 1 || st.Refused[RefusedScanDate] != 1 {
		t.Errorf("got %+v", st)
	}
}

func TestScanRequestErrors(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.fetchToken(t)
	base := e.ts.URL + ScanPath + "?access_token=" + tok

	// GET is refused before the token is looked at.
	r := mustDo(t, "GET", base+"&"+validParams().Encode(), "", "")
	if r.status != 405 || r.header.Get("Allow") != "POST" {
		t.Errorf("GET: got %d Allow %q, want 405 POST", r.status, r.header.Get("Allow"))
	}
	// A JSON body is not read: every field is missing.
	b, _ := json.Marshal(map[string]string{"xgh": "1"})
	wantRefused(t, mustDo(t, "POST", base, "application/json", string(b)), ScanFields...)
	// Another charset.
	if r := mustDo(t, "POST", base, "application/x-www-form-urlencoded; charset=GBK", validParams().Encode()); r.status != 415 {
		t.Errorf("GBK: got %d, want 415", r.status)
	}
	// Malformed form body.
	if r := mustDo(t, "POST", base, "application/x-www-form-urlencoded", "xgh=%zz"); r.status != 400 {
		t.Errorf("malformed: got %d, want 400", r.status)
	}
	// The same field twice with different values, in query and body.
	p := validParams()
	r = mustDo(t, "POST", base+"&xgh=other", "application/x-www-form-urlencoded", p.Encode())
	wantRefused(t, r, "xgh")
	// ... and with the same value: fine.
	r = mustDo(t, "POST", base+"&xgh=2019001", "application/x-www-form-urlencoded", p.Encode())
	wantSuccess(t, r)

	st := e.srv.Stats()
	if st.Refused[RefusedMethod] != 1 || st.Refused[RefusedBadBody] != 2 {
		t.Errorf("got refused %v", st.Refused)
	}
}

func TestScanBodyTooLarge(t *testing.T) {
	srv, err := New(Options{AppID: testAppID, ClientID: testClient, ClientSecret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	// A lowered limit: a 1 MiB body left unread costs the server a
	// half-second wait before it closes the connection.
	srv.maxBody = 1 << 10
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	e := &env{srv: srv, ts: ts}
	tok := e.fetchToken(t)
	big := "name=" + strings.Repeat("a", 1<<10)
	if r := mustDo(t, "POST", ts.URL+ScanPath+"?access_token="+tok, "application/x-www-form-urlencoded", big); r.status != 413 {
		t.Errorf("got %d, want 413", r.status)
	}
	// Without a Content-Length too.
	req, _ := http.NewRequest("POST", ts.URL+ScanPath+"?access_token="+tok, io.MultiReader(strings.NewReader(big)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("chunked: got %d, want 413", resp.StatusCode)
	}
	if got := srv.Stats().Refused[RefusedTooLarge]; got != 2 {
		t.Errorf("Refused[tooLarge]: got %d, want 2", got)
	}
}

func TestCryptoOptions(t *testing.T) {
	opts := crypto.Options{Mode: "cbc", Encoding: "hex", IV: "fedcba9876543210"}
	e := newEnv(t, func(o *Options) { o.Crypto = opts })
	c, err := crypto.New(testAppID, opts)
	if err != nil {
		t.Fatal(err)
	}
	idCard, _ := c.Encrypt(testID)
	tok := e.fetchToken(t)
	p := validParams()
	p.Set("idCard", idCard)
	wantSuccess(t, e.scan(t, tok, p))
	wantRefused(t, e.scan(t, tok, validParams()), "idCard") // ECB base64 no longer decrypts
	if recs := e.srv.Records(); len(recs) != 1 || recs[0].IDCardPlain != testID {
		t.Errorf("got %+v, want one record of %s", recs, testID)
	}
}

func TestRecordLog(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.fetchToken(t)
	for i, x := range []string{"a1", "a2", "a3"} {
		p := validParams()
		p.Set("xgh", x)
		p.Set("scanDate", "2025-03-01 07:59:5"+string(rune('0'+i)))
		wantSuccess(t, e.scan(t, tok, p))
		e.clock.Add(time.Second)
	}
	p := validParams()
	p.Del("name")
	wantRefused(t, e.scan(t, tok, p), "name") // not logged

	lines := strings.Split(strings.TrimSuffix(e.recs.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3:\n%s", len(lines), e.recs)
	}
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %d %q: %v", i, line, err)
		}
		want := map[string]any{
			"termName": "东湖食堂 1 号机", "termSn": "ZAFU-0001", "name": "张三",
			"xgh": "a" + string(rune('1'+i)), "idCard": testCipher, "idCardMasked": "330***********123X",
			"userType": "学生", "scanDate": "2025-03-01 07:59:5" + string(rune('0'+i)), "appId": "01",
			"receivedAt": time.Date(2025, 3, 1, 8, 0, i, 0, time.UTC).Format(time.RFC3339),
		}
		if len(m) != len(want) {
			t.Errorf("line %d: got keys %v, want %v", i, m, want)
		}
		for k, v := range want {
			if m[k] != v {
				t.Errorf("line %d: %s got %v, want %v", i, k, m[k], v)
			}
		}
	}
	recs := e.srv.Records()
	if len(recs) != 3 || recs[0].Xgh != "a1" || recs[2].Xgh != "a3" {
		t.Errorf("Records: got %+v, want a1..a3 in order", recs)
	}
	// Records returns a copy.
	recs[0].Xgh = "changed"
	if e.srv.Records()[0].Xgh != "a1" {
		t.Error("Records shares its slice with the server")
	}
}

func TestModes(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.fetchToken(t)
	tokenURL := e.ts.URL + TokenPath
	good := tokenBody("client_credentials", testClient, testSecret)

	callBoth := func(t *testing.T, check func(t *testing.T, r response, err error)) {
		t.Helper()
		r, err := do(t, "POST", e.ts.URL+ScanPath+"?access_token="+tok, "application/x-www-form-urlencoded", validParams().Encode())
		check(t, r, err)
		r, err = do(t, "POST", tokenURL, "application/json", good)
		check(t, r, err)
	}

	t.Run("down", func(t *testing.T) {
		e.srv.SetMode(ModeDown)
		callBoth(t, func(t *testing.T, r response, err error) {
			if err == nil {
				t.Errorf("got %d %s, want a connection error", r.status, r.body)
			}
		})
	})
	t.Run("503", func(t *testing.T) {
		e.srv.SetMode(Mode503)
		callBoth(t, func(t *testing.T, r response, err error) {
			if err != nil || r.status != 503 {
				t.Errorf("got %d, %v; want 503", r.status, err)
			}
		})
	})
	t.Run("html", func(t *testing.T) {
		e.srv.SetMode(ModeHTML)
		callBoth(t, func(t *testing.T, r response, err error) {
			if err != nil || r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || !bytes.Contains(r.body, []byte("<html")) {
				t.Errorf("got %d %q %.40s, %v; want a 200 HTML page", r.status, r.header.Get("Content-Type"), r.body, err)
			}
		})
	})
	t.Run("redirect", func(t *testing.T) {
		e.srv.SetMode(ModeRedirect)
		callBoth(t, func(t *testing.T, r response, err error) {
			if err != nil || r.status != 302 || r.header.Get("Location") != PortalPath {
				t.Errorf("got %d Location %q, %v; want 302 %s", r.status, r.header.Get("Location"), err, PortalPath)
			}
		})
		// A client that follows it lands on an HTML page.
		resp, err := http.Post(e.ts.URL+ScanPath+"?access_token="+tok, "application/x-www-form-urlencoded", strings.NewReader(validParams().Encode()))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("following: got %d %s, want 200 text/html", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	})
	t.Run("ok again", func(t *testing.T) {
		e.srv.SetMode(ModeOK)
		wantSuccess(t, e.scan(t, tok, validParams()))
	})
	t.Run("expire-token", func(t *testing.T) {
		e.srv.SetMode(ModeExpireToken)
		if m := e.srv.Mode(); m != ModeOK {
			t.Errorf("mode after expire-token: got %v, want ok", m)
		}
		wantInvalidGrant(t, e.scan(t, tok, validParams()), 401)
		tok = e.fetchToken(t)
		wantSuccess(t, e.scan(t, tok, validParams()))
	})

	st := e.srv.Stats()
	// down, 503, html, redirect: 2 calls each, plus the followed redirect.
	if st.Intercepted != 9 || st.Accepted != 2 || st.BadToken != 1 || st.Mode != "ok" {
		t.Errorf("got %+v", st)
	}
	if n := len(e.srv.Records()); n != 2 {
		t.Errorf("got %d records, want 2", n)
	}
}

func TestModeSlow(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.SlowDelay = time.Hour })
	tok := e.fetchToken(t)
	e.srv.SetMode(ModeSlow)

	// A client that gives up gets nothing and nothing is accepted.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", e.ts.URL+ScanPath+"?access_token="+tok, strings.NewReader(validParams().Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("got %d, want a timeout", resp.StatusCode)
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want a deadline error", err)
	}

	// A short delay, set through the control endpoint: answered normally.
	r := mustDo(t, "POST", e.ts.URL+ModeCtlPath+"?m=slow&d=2ms", "", "")
	if r.status != 200 || r.json(t)["slowDelay"] != "2ms" {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	start := time.Now()
	wantSuccess(t, e.scan(t, tok, validParams()))
	if d := time.Since(start); d < 2*time.Millisecond {
		t.Errorf("answered in %v, want at least 2ms", d)
	}
	if n := len(e.srv.Records()); n != 1 {
		t.Errorf("got %d records, want 1", n)
	}
}

func TestCloseReleasesSlowCalls(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.SlowDelay = time.Hour })
	tok := e.fetchToken(t)
	e.srv.SetMode(ModeSlow)
	done := make(chan response, 1)
	go func() {
		r, _ := do(t, "POST", e.ts.URL+ScanPath+"?access_token="+tok, "application/x-www-form-urlencoded", validParams().Encode())
		done <- r
	}()
	// Wait until the call is held.
	for e.srv.Stats().ScanCalls == 0 {
		time.Sleep(time.Millisecond)
	}
	e.srv.Close()
	select {
	case r := <-done:
		wantSuccess(t, r)
	case <-time.After(5 * time.Second):
		t.Fatal("call still held after Close")
	}
}

func TestFailRateAndLatency(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.FailRate = 0.5
		o.Latency = time.Millisecond
	})
	tok := e.fetchToken(t) // the token endpoint is not affected
	var ok, failed int
	start := time.Now()
	const n = 40
	for range n {
		r := e.scan(t, tok, validParams())
		switch r.status {
		case 200:
			wantSuccess(t, r)
			ok++
		case 503:
			failed++
		default:
			t.Fatalf("got %d %s", r.status, r.body)
		}
	}
	if d := time.Since(start); d < n*time.Millisecond {
		t.Errorf("%d calls in %v, want each delayed by 1ms", n, d)
	}
	if ok == 0 || failed == 0 {
		t.Errorf("got %d ok and %d failed, want some of each", ok, failed)
	}
	st := e.srv.Stats()
	if st.Failed != failed || st.Accepted != ok || st.ScanCalls != n {
		t.Errorf("got %+v, want failed %d accepted %d calls %d", st, failed, ok, n)
	}

	all := newEnv(t, func(o *Options) { o.FailRate = 1 })
	tok = all.fetchToken(t)
	for range 5 {
		if r := all.scan(t, tok, validParams()); r.status != 503 {
			t.Errorf("FailRate 1: got %d, want 503", r.status)
		}
	}
}

func TestControlEndpoints(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.fetchToken(t)

	for _, name := range []string{"html", "503", "redirect", "down", "slow", "ok"} {
		r := mustDo(t, "POST", e.ts.URL+ModeCtlPath+"?m="+name, "", "")
		if r.status != 200 || r.json(t)["mode"] != name {
			t.Errorf("m=%s: got %d %s", name, r.status, r.body)
		}
		if got := e.srv.Mode().String(); got != name {
			t.Errorf("m=%s: Mode() got %s", name, got)
		}
	}
	// Form body works too.
	r := mustDo(t, "POST", e.ts.URL+ModeCtlPath, "application/x-www-form-urlencoded", "m=html")
	if r.status != 200 || e.srv.Mode() != ModeHTML {
		t.Errorf("form: got %d %s, mode %v", r.status, r.body, e.srv.Mode())
	}
	r = e.scan(t, tok, validParams())
	if !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Errorf("after m=html: got %s", r.header.Get("Content-Type"))
	}
	r = mustDo(t, "GET", e.ts.URL+ModeCtlPath, "", "")
	if r.status != 200 || r.json(t)["mode"] != "html" {
		t.Errorf("GET mode: got %d %s", r.status, r.body)
	}
	for _, bad := range []string{"?m=bogus", "", "?m=slow&d=soon", "?m=slow&d=-1s"} {
		if r := mustDo(t, "POST", e.ts.URL+ModeCtlPath+bad, "", ""); r.status != 400 {
			t.Errorf("%q: got %d, want 400", bad, r.status)
		}
	}
	if r := mustDo(t, "DELETE", e.ts.URL+ModeCtlPath, "", ""); r.status != 405 {
		t.Errorf("DELETE: got %d, want 405", r.status)
	}

	mustDo(t, "POST", e.ts.URL+ModeCtlPath+"?m=expire-token", "", "")
	wantInvalidGrant(t, e.scan(t, tok, validParams()), 401)

	r = mustDo(t, "GET", e.ts.URL+StatsCtlPath, "", "")
	if r.status != 200 {
		t.Fatalf("stats: got %d", r.status)
	}
	var st Stats
	if err := json.Unmarshal(r.body, &st); err != nil {
		t.Fatal(err)
	}
	want := e.srv.Stats()
	if st.Mode != "ok" || st.TokenFetches != 1 || st.BadToken != 1 || st.Intercepted != 1 || st.ScanCalls != 2 || st.Mode != want.Mode {
		t.Errorf("got %+v, want %+v", st, want)
	}
	if r := mustDo(t, "POST", e.ts.URL+StatsCtlPath, "", ""); r.status != 405 {
		t.Errorf("POST stats: got %d, want 405", r.status)
	}
}

func TestParseMode(t *testing.T) {
	for m := ModeOK; m <= ModeExpireToken; m++ {
		got, err := ParseMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMode(%q): got %v, %v; want %v", m.String(), got, err, m)
		}
	}
	if _, err := ParseMode("sideways"); err == nil {
		t.Error("ParseMode(sideways): got nil error")
	}
	if got := Mode(99).String(); got != "Mode(99)" {
		t.Errorf("got %s", got)
	}
}

func TestLogsMaskSecrets(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.fetchToken(t)
	wantSuccess(t, e.scan(t, tok, validParams()))
	wantInvalidGrant(t, e.scan(t, tok+"x", validParams()), 403)
	mustDo(t, "POST", e.ts.URL+TokenPath, "application/json", tokenBody("client_credentials", testClient, "wrong-secret"))
	out := e.logs.String()
	for _, secret := range []string{tok, testID, "wrong-secret", testSecret} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{"330***********123X", fingerprint(tok), "token issued", "scan record accepted"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}
