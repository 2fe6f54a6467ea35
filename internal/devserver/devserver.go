// Package devserver is a strict local emulation of the endpoints of the
// campus open platform that scanagent uses (docs/platform.md): the client-credentials
// token endpoint, the scan record endpoint and msgsend (operator alerts,
// msgsend.go). Tests, the demo command and
// technicians run it in place of the real platform.
//
// It checks every request at least as strictly as the real platform could:
//
//   - POST /oauth/token: POST only, Content-Type application/json, body
//     {"grant_type":"client_credentials","client_id":…,"client_secret":…}.
//     A wrong grant_type is a 400 unsupported_grant_type, wrong credentials a
//     401 invalid_client. On success a new random 32-character token is
//     issued and the previous one stops working at once, as on the platform.
//     expires_in alternates between a JSON number and a numeric string from
//     one fetch to the next, since the platform documents both.
//   - POST /api/scanrecord.jhtm: POST only (405 otherwise). access_token is
//     read from the query string only; a missing, unknown or superseded token
//     is a 403 and an expired one a 401, both with
//     {"error":"invalid_grant","error_description":"Access token is expired"}.
//     The other parameters (termName, termSn, name, xgh, idCard, userType,
//     scanDate, appId) come from an application/x-www-form-urlencoded UTF-8
//     body or from the query string. Each must be present and non-blank,
//     appId must be the configured one, idCard must decrypt (package crypto,
//     with Options.Crypto) to a 15-digit or 18-character ID number (17 digits
//     and a digit or X), and scanDate must read as "2006-01-02 15:04:05".
//     A refused record is answered 200 with the platform's error envelope
//     ({"type":"error","code":"0",…,"errorFields":["idCard"]}), an accepted
//     one with {"type":"success","code":"1","content":"成功",…}.
//
// Faults are injected in two ways. Options.FailRate and Options.Latency apply
// to scan calls only: that share of them is answered 503, and every one is
// delayed. A Mode, set with SetMode or the control endpoint, applies to both
// platform endpoints, as a network fault would: ModeDown closes the
// connection without an answer, Mode503 answers 503 with a proxy's HTML page,
// ModeHTML answers 200 with a captive-portal HTML page, ModeRedirect answers
// 302 to /portal/login (itself such a page), ModeSlow holds each call for
// Options.SlowDelay before answering normally (a client that gives up first
// gets nothing, and its record is not accepted), and ModeNotFound answers
// 404 on the scan endpoint only (a mistyped scan_path). ModeExpireToken is an action
// rather than a state: the current token expires at once, so the next scan
// call gets a 401 invalid_grant, and the server goes back to ModeOK. Close
// releases held calls so that the HTTP server around the handler can stop.
//
// Control endpoints, for a technician or a test driving a running devserver
// (they are not part of the platform and are never faulted; do not expose a
// devserver beyond the machine or lab network it serves):
//
//	POST /_dev/mode?m=down           switch mode: ok, down, 503, html, redirect, slow, expire-token, 404
//	POST /_dev/mode?m=slow&d=30s     ModeSlow, holding each call for 30s
//	GET  /_dev/mode                  {"mode":"ok","slowDelay":"1m0s"}
//	GET  /_dev/stats                 Stats as JSON
//	GET  /_dev/messages              the messages msgsend accepted, as JSON
//
// Accepted records are kept in memory (Records, with the decrypted ID number
// for tests to check) and, if Options.Log is set, written to it as JSON lines
// with the ID number masked. Nothing the server logs or writes contains a
// plaintext ID number, a token or the client secret.
//
// It does not emulate the platform's other APIs, TLS, or persistence: its
// state is lost when the process ends.
package devserver

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"

	"scanagent/internal/crypto"
)

// Paths served by Handler.
const (
	TokenPath    = "/oauth/token"
	ScanPath     = "/api/scanrecord.jhtm"
	PortalPath   = "/portal/login" // where ModeRedirect points
	ModeCtlPath  = "/_dev/mode"
	StatsCtlPath = "/_dev/stats"
)

// ScanDateFmt is the only scanDate layout accepted.
const ScanDateFmt = "2006-01-02 15:04:05"

// Defaults of Options.
const (
	DefaultTTL  = 14 * 24 * time.Hour
	DefaultSlow = time.Minute
)

const (
	maxBodyBytes  = 1 << 20 // default of Server.maxBody
	tokenLen      = 32
	tokenAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

// Log attribute keys.
const (
	keyEndpoint = "endpoint"
	keyMode     = "mode"
	keyStatus   = "status"
	keyReason   = "reason"
	keyToken    = "token" // a fingerprint, never the token
	keyXgh      = "xgh"
	keyTermSn   = "termSn"
	keyIDCard   = "idCard" // masked
	keyFields   = "errorFields"
)

// Options configures a Server. AppID, ClientID and ClientSecret are required;
// the zero value of every other field means its default.
type Options struct {
	AppID        string
	ClientID     string
	ClientSecret string

	// Crypto is how idCard is expected to be encrypted; the zero value is
	// the platform's default, ECB and base64.
	Crypto crypto.Options

	// TokenTTL is the lifetime of an issued token; 0 means 14 days, as on
	// the platform.
	TokenTTL time.Duration
	// FailRate is the share of scan calls (0 to 1) answered 503 before
	// they are looked at.
	FailRate float64
	// Latency is added to every scan call.
	Latency time.Duration
	// SlowDelay is how long ModeSlow holds a call; 0 means one minute.
	SlowDelay time.Duration
	// DateShift moves the Date header of every answer from the server's
	// clock, as a platform (or a terminal) with a wrong clock; see also
	// SetDateShift.
	DateShift time.Duration

	// Log receives each accepted record as a JSON line (ID number masked);
	// nil means none.
	Log io.Writer
	// Now is the clock used for token expiry and ReceivedAt; nil means
	// time.Now.
	Now func() time.Time
	// Rand drives tokens and FailRate; nil means a randomly seeded source.
	// The Server serialises its use.
	Rand *mrand.Rand
	// Logger receives one line per token issued and per scan call answered;
	// nil means no logging.
	Logger *slog.Logger
}

// Mode is a fault the server plays on its platform endpoints.
type Mode int

// Modes; see the package documentation.
const (
	ModeOK Mode = iota
	ModeDown
	Mode503
	ModeHTML
	ModeRedirect
	ModeSlow
	ModeExpireToken
	ModeNotFound // the scan endpoint answers 404, as a mistyped scan_path or a platform being redeployed
)

var modeNames = [...]string{
	ModeOK:          "ok",
	ModeDown:        "down",
	Mode503:         "503",
	ModeHTML:        "html",
	ModeRedirect:    "redirect",
	ModeSlow:        "slow",
	ModeExpireToken: "expire-token",
	ModeNotFound:    "404",
}

// String returns the name ParseMode and the control endpoint accept.
func (m Mode) String() string {
	if m >= 0 && int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode reads a mode name as printed by Mode.String.
func ParseMode(s string) (Mode, error) {
	for m, name := range modeNames {
		if strings.EqualFold(s, name) {
			return Mode(m), nil
		}
	}
	return 0, fmt.Errorf("unknown mode %q: use one of %s", s, strings.Join(modeNames[:], ", "))
}

// Record is one accepted scan record, as received.
type Record struct {
	TermName string `json:"termName"`
	TermSn   string `json:"termSn"`
	Name     string `json:"name"`
	Xgh      string `json:"xgh"`
	// IDCard is the ciphertext as received.
	IDCard string `json:"idCard"`
	// IDCardPlain is the decrypted ID number. It stays in memory, for tests:
	// it is never written to the Log (IDCardMasked is).
	IDCardPlain  string    `json:"-"`
	IDCardMasked string    `json:"idCardMasked"`
	UserType     string    `json:"userType"`
	ScanDate     string    `json:"scanDate"`
	AppID        string    `json:"appId"`
	ReceivedAt   time.Time `json:"receivedAt"`
}

// Refusal reason classes, the keys of Stats.Refused.
const (
	RefusedMissing  = "missing"  // a required parameter absent or blank
	RefusedEncoding = "encoding" // a parameter that is not valid UTF-8
	RefusedAppID    = "appId"    // not the configured appId
	RefusedIDCard   = "idCard"   // does not decrypt to an ID number
	RefusedScanDate = "scanDate" // not "2006-01-02 15:04:05"
	RefusedMethod   = "method"   // not POST (405)
	RefusedTooLarge = "tooLarge" // body over 1 MiB (413)
	RefusedBadBody  = "badBody"  // body unreadable, malformed, or in a charset other than UTF-8 (400, 415)
)

// Stats counts what the server has seen since New.
type Stats struct {
	Mode         string         `json:"mode"`
	TokenFetches int            `json:"tokenFetches"` // tokens issued
	TokenRefused int            `json:"tokenRefused"` // token calls refused (method, content type, body, grant, credentials)
	BadClient    int            `json:"badClient"`    // of which wrong client credentials (401)
	ScanCalls    int            `json:"scanCalls"`    // every call to the scan path
	Accepted     int            `json:"accepted"`     // records accepted
	RefusedCalls int            `json:"refusedCalls"` // scan calls refused for their content (envelope type error, 405, 413)
	Refused      map[string]int `json:"refused"`      // by reason class; a call with several problems counts in each class
	Failed       int            `json:"failed"`       // scan calls answered 503 by FailRate
	Intercepted  int            `json:"intercepted"`  // calls on either endpoint answered by ModeDown, Mode503, ModeHTML or ModeRedirect
	BadToken     int            `json:"badToken"`     // scan and msgsend calls with a missing, unknown, superseded or expired token
	MsgCalls     int            `json:"msgCalls"`     // every call to msgsend
	MsgSent      int            `json:"msgSent"`      // messages accepted (status 1)
	MsgRefused   int            `json:"msgRefused"`   // messages refused for their content (status 0)
}

// Server is the emulated platform. Its methods are safe for concurrent use.
type Server struct {
	opts   Options
	cipher *crypto.Cipher
	now    func() time.Time
	log    *slog.Logger
	done   chan struct{}
	close  sync.Once
	// maxBody limits request bodies; a variable so that tests can
	// lower it.
	maxBody int64

	mu        sync.Mutex
	mode      Mode
	slow      time.Duration
	dateShift time.Duration
	rand      *mrand.Rand
	token     string
	expiresAt time.Time
	fetches   int
	records   []Record
	messages  []Message
	stats     Stats
}

// New checks opts and returns a Server.
func New(opts Options) (*Server, error) {
	var problems []string
	if opts.AppID == "" {
		problems = append(problems, "AppID is empty (--app-id)")
	}
	if opts.ClientID == "" {
		problems = append(problems, "ClientID is empty (--client-id)")
	}
	if opts.ClientSecret == "" {
		problems = append(problems, "ClientSecret is empty (--client-secret)")
	}
	if opts.TokenTTL < 0 {
		problems = append(problems, fmt.Sprintf("TokenTTL %v is negative", opts.TokenTTL))
	}
	if !(opts.FailRate >= 0 && opts.FailRate <= 1) {
		problems = append(problems, fmt.Sprintf("FailRate %v is not between 0 and 1", opts.FailRate))
	}
	if opts.Latency < 0 || opts.SlowDelay < 0 {
		problems = append(problems, "Latency and SlowDelay must not be negative")
	}
	var c *crypto.Cipher
	if opts.AppID != "" {
		var err error
		if c, err = crypto.New(opts.AppID, opts.Crypto); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("devserver: %s", strings.Join(problems, "; "))
	}

	if opts.TokenTTL == 0 {
		opts.TokenTTL = DefaultTTL
	}
	if opts.SlowDelay == 0 {
		opts.SlowDelay = DefaultSlow
	}
	s := &Server{
		opts:      opts,
		cipher:    c,
		now:       opts.Now,
		log:       opts.Logger,
		done:      make(chan struct{}),
		slow:      opts.SlowDelay,
		dateShift: opts.DateShift,
		maxBody:   maxBodyBytes,
		rand:      opts.Rand,
		stats:     Stats{Refused: map[string]int{}},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.rand == nil {
		var seed [16]byte
		rand.Read(seed[:])
		s.rand = mrand.New(mrand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
	}
	return s, nil
}

// Handler returns the HTTP handler serving the platform and control
// endpoints.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(TokenPath, s.faulted(TokenPath, s.serveToken))
	mux.HandleFunc(ScanPath, s.faulted(ScanPath, s.serveScan))
	mux.HandleFunc(MsgPath, s.faulted(MsgPath, s.serveMsg))
	mux.HandleFunc(MessagesCtlPath, s.serveMessagesCtl)
	mux.HandleFunc(PortalPath, servePortal)
	mux.HandleFunc(ModeCtlPath, s.serveModeCtl)
	mux.HandleFunc(StatsCtlPath, s.serveStatsCtl)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		shift := s.dateShift
		s.mu.Unlock()
		w.Header().Set("Date", s.now().Add(shift).UTC().Format(http.TimeFormat))
		mux.ServeHTTP(w, r)
	})
}

// SetDateShift moves the Date header of every answer by d from the
// server's clock.
func (s *Server) SetDateShift(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dateShift = d
}

// Close makes calls held by ModeSlow or Latency return at once, so that an
// http.Server or httptest.Server can shut down. The handler keeps working
// afterwards, without delays.
func (s *Server) Close() {
	s.close.Do(func() { close(s.done) })
}

// SetMode switches the fault played on the platform endpoints.
// ModeExpireToken expires the current token and leaves the mode as ModeOK.
func (s *Server) SetMode(m Mode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setModeLocked(m)
}

func (s *Server) setModeLocked(m Mode) {
	if m == ModeExpireToken {
		if s.token != "" {
			s.expiresAt = s.now()
		}
		m = ModeOK
		s.log.Info("token expired on request", keyToken, fingerprint(s.token))
	}
	if m != s.mode {
		s.log.Info("mode changed", keyMode, m.String(), "from", s.mode.String())
	}
	s.mode = m
}

// Mode returns the current mode.
func (s *Server) Mode() Mode {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mode
}

// Records returns a copy of the accepted records, in the order accepted.
func (s *Server) Records() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Record(nil), s.records...)
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.statsLocked()
}

func (s *Server) statsLocked() Stats {
	st := s.stats
	st.Mode = s.mode.String()
	st.Refused = make(map[string]int, len(s.stats.Refused))
	for k, v := range s.stats.Refused {
		st.Refused[k] = v
	}
	return st
}

// faulted wraps a platform endpoint with the current Mode.
func (s *Server) faulted(endpoint string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		mode, slow := s.mode, s.slow
		if endpoint == ScanPath {
			s.stats.ScanCalls++
		}
		if mode != ModeOK && mode != ModeSlow && (mode != ModeNotFound || endpoint == ScanPath) {
			s.stats.Intercepted++
		}
		s.mu.Unlock()

		log := s.log.With(keyEndpoint, endpoint)
		switch mode {
		case ModeDown:
			log.Debug("connection dropped", keyMode, mode.String())
			drop(w)
			return
		case Mode503:
			log.Debug("answered 503", keyMode, mode.String())
			serve503(w)
			return
		case ModeHTML:
			log.Debug("answered captive portal page", keyMode, mode.String())
			servePortal(w, r)
			return
		case ModeRedirect:
			log.Debug("redirected to portal", keyMode, mode.String())
			w.Header().Set("Location", PortalPath)
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusFound)
			io.WriteString(w, `<html><body><a href="`+PortalPath+`">Login required</a></body></html>`)
			return
		case ModeNotFound:
			if endpoint == ScanPath {
				log.Debug("answered 404", keyMode, mode.String())
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(http.StatusNotFound)
				io.WriteString(w, "<html><body><h1>404 Not Found</h1></body></html>\n")
				return
			}
		case ModeSlow:
			if !s.bufferBody(w, r) || !s.sleep(r, slow) {
				log.Debug("client gave up during slow mode")
				return
			}
		}
		next(w, r)
	}
}

// spinEarly is how much sooner than a delay's end sleep's timer is set.
const spinEarly = 700 * time.Microsecond

// sleep waits d, or less if the client goes away or Close is called. It
// reports whether the call should still be answered.
//
// A timer on an idle machine fires late, because waking a sleeping CPU takes
// time: 0.3–1 ms on the 2-core VM of BENCHMARKS.md. A 20 ms platform would
// then answer in about 21 ms, and a client's drain rate would be judged
// against a platform slower than the one asked for. So the timer is set
// spinEarly short and the rest is waited out while yielding the CPU, which
// keeps the delay within a few microseconds of d, at the cost of a few
// hundred microseconds of CPU per delayed call.
func (s *Server) sleep(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	end := time.Now().Add(d)
	t := time.NewTimer(max(d-spinEarly, 0))
	defer t.Stop()
	select {
	case <-t.C:
		for time.Now().Before(end) {
			if r.Context().Err() != nil {
				return false
			}
			runtime.Gosched()
		}
		return true
	case <-s.done:
		return r.Context().Err() == nil
	case <-r.Context().Done():
		return false
	}
}

// errTooLarge is readBody's error for a body over Server.maxBody.
var errTooLarge = errors.New("request body too large")

// readBody reads the request body, up to s.maxBody bytes. It does not use
// http.MaxBytesReader, which makes the server close the connection (and wait
// half a second doing so) even when the rest of the body is small.
func (s *Server) readBody(r *http.Request) ([]byte, error) {
	if r.ContentLength > s.maxBody {
		return nil, errTooLarge
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, s.maxBody+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > s.maxBody {
		return nil, errTooLarge
	}
	return body, nil
}

// bufferBody reads the request body into memory before a delay: net/http
// notices a client that gives up only once the body has been consumed. It
// answers 413 and reports false if the body is too large.
func (s *Server) bufferBody(w http.ResponseWriter, r *http.Request) bool {
	body, err := s.readBody(r)
	if err != nil {
		if errors.Is(err, errTooLarge) {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		}
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return true
}

// drop closes the connection without an answer.
func drop(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler) // HTTP/2: reset the stream
}

func serve503(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(http.StatusServiceUnavailable)
	io.WriteString(w, "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
}

func servePortal(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>校园网认证 Campus network login</title></head>
<body><h1>校园网认证</h1><p>Please log in to use the network.</p>
<form method="post" action="`+PortalPath+`"><input name="user"><input name="pass" type="password"><button>登录</button></form>
</body></html>
`)
}

// ---- token endpoint ----

type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	log := s.log.With(keyEndpoint, TokenPath)
	refuse := func(status int, code, desc string) {
		s.mu.Lock()
		s.stats.TokenRefused++
		if status == http.StatusUnauthorized {
			s.stats.BadClient++
		}
		s.mu.Unlock()
		log.Info("token call refused", keyStatus, status, keyReason, code)
		writeJSON(w, status, oauthError{code, desc})
	}

	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		refuse(http.StatusMethodNotAllowed, "invalid_request", "Request method '"+r.Method+"' not supported")
		return
	}
	if mt := mediaType(r); mt != "application/json" {
		refuse(http.StatusUnsupportedMediaType, "invalid_request", "Content-Type must be application/json")
		return
	}
	var body struct {
		GrantType    *string `json:"grant_type"`
		ClientID     *string `json:"client_id"`
		ClientSecret *string `json:"client_secret"`
	}
	raw, err := s.readBody(r)
	if errors.Is(err, errTooLarge) {
		refuse(http.StatusRequestEntityTooLarge, "invalid_request", "Request body too large")
		return
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&body); err != nil {
		refuse(http.StatusBadRequest, "invalid_request", "Request body is not a JSON object with string values")
		return
	}
	if dec.More() {
		refuse(http.StatusBadRequest, "invalid_request", "Trailing data after the JSON object")
		return
	}
	switch {
	case body.GrantType == nil || *body.GrantType == "":
		refuse(http.StatusBadRequest, "invalid_request", "Missing grant type")
		return
	case *body.GrantType != "client_credentials":
		g := *body.GrantType
		if len(g) > 64 {
			g = g[:64]
		}
		refuse(http.StatusBadRequest, "unsupported_grant_type", "Unsupported grant type: "+g)
		return
	case body.ClientID == nil || body.ClientSecret == nil ||
		!equal(*body.ClientID, s.opts.ClientID) || !equal(*body.ClientSecret, s.opts.ClientSecret):
		refuse(http.StatusUnauthorized, "invalid_client", "Bad client credentials")
		return
	}

	s.mu.Lock()
	prev := s.token
	s.token = s.newTokenLocked()
	s.expiresAt = s.now().Add(s.opts.TokenTTL)
	s.fetches++
	s.stats.TokenFetches++
	token, n := s.token, s.fetches
	s.mu.Unlock()

	secs := int64(s.opts.TokenTTL / time.Second)
	var expiresIn any = secs
	if n%2 == 0 {
		expiresIn = fmt.Sprint(secs) // every other fetch: a numeric string
	}
	log.Info("token issued", keyToken, fingerprint(token), "superseded", fingerprint(prev), "expires_in", secs)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": token,
		"expires_in":   expiresIn,
		"scope":        "base_api",
		"token_type":   "Bearer",
	})
}

func (s *Server) newTokenLocked() string {
	b := make([]byte, tokenLen)
	for i := range b {
		b[i] = tokenAlphabet[s.rand.IntN(len(tokenAlphabet))]
	}
	return string(b)
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// fingerprint names a token in logs without revealing it.
func fingerprint(token string) string {
	if token == "" {
		return "none"
	}
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:4])
}

func mediaType(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	mt, _, _ := strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own types are written
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
