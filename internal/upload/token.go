package upload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"scanagent/internal/queue"
	"scanagent/internal/redact"
)

// TokenStore keeps the token across restarts (the queue database does).
type TokenStore interface {
	LoadToken() (queue.Token, error)
	SaveToken(ctx context.Context, t queue.Token) error
}

// ErrBadCredentials means the token endpoint refused client_id/client_secret.
var ErrBadCredentials = errors.New("the platform refused the client credentials: check [platform] client_id and client_secret (or client_secret_file / SCANAGENT_CLIENT_SECRET)")

// TokenOptions tune a TokenSource; the zero value means the defaults.
type TokenOptions struct {
	RefreshBefore time.Duration // refresh when less than this is left; 0 = 24h
	BadCredsRetry time.Duration // wait after a 401 from the token endpoint; 0 = 5m
	// FailRetry is a wait after another failed fetch (network, platform
	// error); 0 = none of its own: the uploader's backoff gate decides
	// when the next fetch goes, as for uploads, so the first upload after
	// an outage is not held back by a separate timer.
	FailRetry   time.Duration
	DefaultTTL  time.Duration    // when expires_in is missing; 0 = 2h
	Logger      *slog.Logger     // nil = discard
	Redactor    *redact.Redactor // issued tokens are added to it
	Now         func() time.Time
	SaveTimeout time.Duration // bound on saving the token; 0 = 5s
	// Platform is told of refused credentials, network faults and the
	// Date of each answer; nil = nobody.
	Platform *Platform
}

// TokenSource hands out the platform access token. Fetching a new token
// invalidates the previous one, so fetches are single-flight: one at a time
// for the whole agent, and only when the current token is missing, about to
// expire or reported invalid. The token is persisted in the store.
type TokenSource struct {
	client       *http.Client
	url          string
	clientID     string
	clientSecret string
	store        TokenStore
	opts         TokenOptions
	log          *slog.Logger
	now          func() time.Time

	sem chan struct{} // single flight: held while checking or fetching

	mu        sync.Mutex
	cur       queue.Token
	loaded    bool
	errUntil  time.Time // no fetch before this, after a failure
	lastErr   error
	badCreds  bool
	badSince  time.Time // when the token endpoint first refused the credentials
	fetches   atomic.Int64
	failures  atomic.Int64 // fetches failed so far (a metric; and see Token)
	refreshAt time.Time
}

// NewTokenSource returns a token source for the token endpoint tokenURL.
func NewTokenSource(client *http.Client, tokenURL, clientID, clientSecret string, store TokenStore, opts TokenOptions) *TokenSource {
	if opts.RefreshBefore == 0 {
		opts.RefreshBefore = 24 * time.Hour
	}
	if opts.BadCredsRetry == 0 {
		opts.BadCredsRetry = 5 * time.Minute
	}
	if opts.DefaultTTL == 0 {
		opts.DefaultTTL = 2 * time.Hour
	}
	if opts.SaveTimeout == 0 {
		opts.SaveTimeout = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Redactor != nil {
		opts.Redactor.Add(clientSecret)
	}
	return &TokenSource{client: client, url: tokenURL, clientID: clientID, clientSecret: clientSecret,
		store: store, opts: opts, log: opts.Logger, now: opts.Now, sem: make(chan struct{}, 1)}
}

// Fetches is how many token requests this source has made.
func (ts *TokenSource) Fetches() int64 { return ts.fetches.Load() }

// Failures is how many of those requests got no token.
func (ts *TokenSource) Failures() int64 { return ts.failures.Load() }

// CredentialsRefused reports whether the token endpoint's last answer
// refused client_id/client_secret (ErrBadCredentials), and since when. It
// never fetches.
func (ts *TokenSource) CredentialsRefused() (since time.Time, refused bool) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.badSince, ts.badCreds
}

// Token returns a valid access token, fetching one if needed.
func (ts *TokenSource) Token(ctx context.Context) (string, error) {
	failed := ts.failures.Load()
	select {
	case ts.sem <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-ts.sem }()

	ts.mu.Lock()
	if !ts.loaded {
		ts.loaded = true
		if t, err := ts.store.LoadToken(); err == nil && t.AccessToken != "" {
			ts.setLocked(t)
		}
	}
	now := ts.now()
	cur, refreshAt := ts.cur, ts.refreshAt
	valid := cur.AccessToken != "" && now.Before(cur.Expiry)
	if valid && now.Before(refreshAt) {
		ts.mu.Unlock()
		return cur.AccessToken, nil
	}
	// A fetch that failed while this caller waited its turn answers it
	// too: callers queued behind a failing fetch do not each try again
	// (the uploader's backoff decides when the next one goes).
	if now.Before(ts.errUntil) || ts.failures.Load() != failed && ts.lastErr != nil {
		err := ts.lastErr
		ts.mu.Unlock()
		if valid {
			return cur.AccessToken, nil
		}
		return "", err
	}
	ts.mu.Unlock()

	t, err := ts.fetch(ctx)
	if p := ts.opts.Platform; p != nil && ctx.Err() == nil {
		switch {
		case err == nil:
			p.credentials("", "")
		case errors.Is(err, ErrBadCredentials):
			p.credentials("the token endpoint refused client_id / client_secret (HTTP 401)",
				"ask the platform's administrators for the right [platform] client_id and client_secret (or client_secret_file / SCANAGENT_CLIENT_SECRET); restart after the fix")
		case errors.Is(err, ErrNotToken):
			p.unreachable("token request: not the platform's answer (a captive portal or a proxy's page?)", Fault{Fix: FixPortal}, err.Error())
		default:
			var he *httpStatusError
			if errors.As(err, &he) {
				p.unreachable(fmt.Sprintf("token request: HTTP %d", he.status), Fault{Fix: "check [platform] base_url and token_path; a 5xx means the platform is failing: it is retried"}, err.Error())
			} else {
				f := Diagnose(err)
				p.unreachable("token request: "+f.Cause, f, err.Error())
			}
		}
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		ts.failures.Add(1)
		wait := ts.opts.FailRetry
		if errors.Is(err, ErrBadCredentials) {
			wait = ts.opts.BadCredsRetry
			if !ts.badCreds {
				ts.log.Error("configuration error: token request refused", "err", err.Error(), "retry_in", wait.String())
				ts.badSince = ts.now()
			}
			ts.badCreds = true
		}
		ts.errUntil, ts.lastErr = ts.now().Add(wait), err
		if valid { // still valid: keep using it and refresh later
			return cur.AccessToken, nil
		}
		return "", err
	}
	if ts.badCreds {
		ts.log.Info("token request accepted again: client credentials fixed")
	}
	ts.badCreds, ts.badSince, ts.errUntil, ts.lastErr = false, time.Time{}, time.Time{}, nil
	ts.setLocked(t)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ts.opts.SaveTimeout)
	defer cancel()
	if err := ts.store.SaveToken(sctx, t); err != nil {
		ts.log.Warn("could not persist the access token; a restart will fetch a new one", "err", err.Error())
	}
	ts.log.Info("access token obtained", "expires", t.Expiry.Format(time.RFC3339), "fetches", ts.fetches.Load())
	return t.AccessToken, nil
}

func (ts *TokenSource) setLocked(t queue.Token) {
	ts.cur = t
	if ts.opts.Redactor != nil {
		ts.opts.Redactor.Add(t.AccessToken)
	}
	ttl := t.Expiry.Sub(t.FetchedAt)
	margin := min(ts.opts.RefreshBefore, ttl/2)
	ts.refreshAt = t.Expiry.Add(-margin)
}

// Invalidate reports that the platform refused tok. If tok is still the
// current token, the next Token call fetches a new one; a token already
// replaced is ignored, so many workers reporting the same token cause one
// fetch.
func (ts *TokenSource) Invalidate(tok string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.cur.AccessToken == tok {
		ts.cur = queue.Token{}
		ts.errUntil = time.Time{}
	}
}

type tokenResponse struct {
	AccessToken string          `json:"access_token"`
	ExpiresIn   json.RawMessage `json:"expires_in"`
	TokenType   string          `json:"token_type"`
	Error       string          `json:"error"`
	Description string          `json:"error_description"`
}

func (ts *TokenSource) fetch(ctx context.Context) (queue.Token, error) {
	ts.fetches.Add(1)
	body, _ := json.Marshal(map[string]string{
		"grant_type": "client_credentials", "client_id": ts.clientID, "client_secret": ts.clientSecret,
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.url, bytes.NewReader(body))
	if err != nil {
		return queue.Token{}, fmt.Errorf("token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	start := ts.now()
	resp, err := ts.client.Do(req)
	if err != nil {
		return queue.Token{}, &netError{"token request: " + ts.opts.Redactor.Error(err), err}
	}
	defer resp.Body.Close()
	if ts.opts.Platform != nil {
		ts.opts.Platform.observe(start, ts.now(), resp.Header)
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var tr tokenResponse
	jsonErr := json.Unmarshal(raw, &tr)
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return queue.Token{}, ErrBadCredentials
	case resp.StatusCode != http.StatusOK:
		detail := ""
		if jsonErr == nil && tr.Error != "" {
			detail = ": " + tr.Error + " " + tr.Description
		}
		return queue.Token{}, &httpStatusError{resp.StatusCode, fmt.Sprintf("token request: HTTP %d%s", resp.StatusCode, ts.opts.Redactor.String(detail))}
	case jsonErr != nil || tr.AccessToken == "":
		return queue.Token{}, fmt.Errorf("token request: HTTP 200 but not a token answer (%s): %w", ts.opts.Redactor.String(describeBody(resp, raw)), ErrNotToken)
	}
	ttl := ts.opts.DefaultTTL
	if secs, ok := parseExpiresIn(tr.ExpiresIn); ok && secs > 0 {
		ttl = time.Duration(secs) * time.Second
	}
	return queue.Token{AccessToken: tr.AccessToken, FetchedAt: start, Expiry: start.Add(ttl)}, nil
}

// ErrNotToken: the token endpoint answered 200 with something else (a
// captive portal's page).
var ErrNotToken = errors.New("not the platform's answer; a captive portal or a proxy's page?")

// httpStatusError is an unexpected status from the token endpoint.
type httpStatusError struct {
	status int
	msg    string
}

func (e *httpStatusError) Error() string { return e.msg }

// parseExpiresIn accepts a JSON number or a numeric string.
func parseExpiresIn(raw json.RawMessage) (int64, bool) {
	s := strings.Trim(strings.TrimSpace(string(raw)), `"`)
	if s == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil {
			return 0, false
		}
		n = int64(f)
	}
	return n, true
}
