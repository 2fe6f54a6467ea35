package upload

import (
	"context"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"scanagent/internal/queue"
)

// sendOnce runs one attempt of one record through a real client against
// scanURL and returns the classified result.
func sendOnce(t *testing.T, client *http.Client, scanURL string) Result {
	t.Helper()
	u, err := New(nil, nil, client, Options{ScanURL: scanURL, AppID: "01"})
	if err != nil {
		t.Fatal(err)
	}
	return u.send(context.Background(), queue.Record{Xgh: "1", ScanTime: time.Now()}, "TOKEN-abcdef", slog.New(slog.DiscardHandler))
}

func TestTransportFailuresAreTransient(t *testing.T) {
	refused := func() string { // a port nobody listens on
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return "http://" + addr + "/api/scanrecord.jhtm"
	}
	resetMidBody := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, _ := w.(http.Hijacker).Hijack()
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"type\":\"succ")
		buf.Flush()
		conn.(*net.TCPConn).SetLinger(0)
		conn.Close()
	}))
	defer resetMidBody.Close()
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer slow.Close()
	defer close(release) // before Close, which waits for handlers
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"type":"success"}`)
	}))
	defer tlsSrv.Close()

	plain, _ := NewHTTPClient(200*time.Millisecond, "", 2)
	patient, _ := NewHTTPClient(5*time.Second, "", 2) // a TLS handshake under emulation is slow
	dnsFail, _ := NewHTTPClient(time.Second, "", 2)
	dnsFail.Transport.(*http.Transport).DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such host", Name: "open.example.edu", IsNotFound: true}}
	}
	for _, tc := range []struct {
		name   string
		client *http.Client
		url    string
		want   string
	}{
		{"refused", patient, refused(), "refused"},
		{"reset mid-body", patient, resetMidBody.URL + "/api/scanrecord.jhtm", ""},
		{"timeout", plain, slow.URL + "/api/scanrecord.jhtm", "Timeout"},
		{"dns", dnsFail, "http://open.example.edu/api/scanrecord.jhtm", "no such host"},
		{"tls unknown authority", patient, tlsSrv.URL + "/api/scanrecord.jhtm", "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := sendOnce(t, tc.client, tc.url)
			if res.Outcome != Transient || !strings.Contains(res.Reason, tc.want) {
				t.Fatalf("got %v %q; want transient mentioning %q", res.Outcome, res.Reason, tc.want)
			}
			if strings.Contains(res.Reason, "TOKEN-abcdef") {
				t.Fatalf("reason leaks the token: %q", res.Reason)
			}
		})
	}

	t.Run("ca_file trusts an intranet CA", func(t *testing.T) {
		caFile := filepath.Join(t.TempDir(), "ca.pem")
		pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw})
		if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
			t.Fatal(err)
		}
		client, err := NewHTTPClient(time.Second, caFile, 2)
		if err != nil {
			t.Fatal(err)
		}
		if res := sendOnce(t, client, tlsSrv.URL+"/api/scanrecord.jhtm"); res.Outcome != Delivered {
			t.Fatalf("with ca_file: got %v %q, want delivered", res.Outcome, res.Reason)
		}
	})
	t.Run("ca_file without a certificate", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "ca.pem")
		os.WriteFile(bad, []byte("not a certificate"), 0o600)
		if _, err := NewHTTPClient(time.Second, bad, 2); err == nil {
			t.Fatal("a ca_file without PEM accepted")
		}
	})
}

func TestRetryAfterHonoured(t *testing.T) {
	p := newPlatform(t)
	var mu sync.Mutex
	var times []time.Time
	p.setScan(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		n := len(times)
		mu.Unlock()
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		io.WriteString(w, `{"type":"success","errorFields":[]}`)
	})
	r := newRig(t, p, "", func(o *Options) { o.Concurrency = 1 })
	r.enqueue(t, 1)
	r.start()
	waitFor(t, "delivered", func() bool { return r.stats(t).Delivered == 1 })
	mu.Lock()
	defer mu.Unlock()
	if gap := times[1].Sub(times[0]); gap < 900*time.Millisecond {
		t.Fatalf("retried after %v; want at least the 1 s of Retry-After (retry_max is 5 ms)", gap)
	}
}

func TestOneProbeAtATimeWhileFailing(t *testing.T) {
	p := newPlatform(t)
	var calls, inflight, maxAfterFirst atomic.Int64
	p.setScan(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		cur := inflight.Add(1)
		defer inflight.Add(-1)
		if n > 4 { // the first wave went out before anyone knew
			for {
				m := maxAfterFirst.Load()
				if cur <= m || maxAfterFirst.CompareAndSwap(m, cur) {
					break
				}
			}
		}
		time.Sleep(2 * time.Millisecond)
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	// The backoff is long against the 2 ms answers, so that the probe
	// cannot leave while a request of the first wave (sent before the gate
	// closed, and allowed) is still in flight: the workers of the first
	// wave do not all send at the same instant.
	r := newRig(t, p, "", func(o *Options) {
		o.Concurrency = 4
		o.RetryInitial, o.RetryMax = 20*time.Millisecond, 40*time.Millisecond
	})
	r.enqueue(t, 20)
	r.start()
	waitFor(t, "many failed calls", func() bool { return calls.Load() >= 20 })
	r.stop()
	if m := maxAfterFirst.Load(); m != 1 {
		t.Fatalf("%d requests in flight at once while the platform was failing; want 1 probe", m)
	}
}

func TestTokenRefreshedBeforeExpiry(t *testing.T) {
	p := newPlatform(t)
	q, err := queue.Open(filepath.Join(t.TempDir(), "queue.db"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	client, _ := NewHTTPClient(time.Second, "", 1)
	ts := NewTokenSource(client, p.srv.URL+"/oauth/token", "cid", "secret-xyz", q, TokenOptions{RefreshBefore: 24 * time.Hour, Now: clock})
	ctx := context.Background()
	first, err := ts.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	advance(12 * 24 * time.Hour) // 2 days left of 14: no refresh yet
	if tok, _ := ts.Token(ctx); tok != first || ts.Fetches() != 1 {
		t.Fatalf("token refreshed with 2 days left (fetches %d)", ts.Fetches())
	}
	advance(25 * time.Hour) // less than 24h left
	second, err := ts.Token(ctx)
	if err != nil || second == first || ts.Fetches() != 2 {
		t.Fatalf("not refreshed with <24h left: %v, fetches %d", err, ts.Fetches())
	}
	stored, _ := q.LoadToken()
	if stored.AccessToken != second {
		t.Fatalf("refreshed token not persisted")
	}
	// Many concurrent callers after an invalidation: one fetch.
	ts.Invalidate(second)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() { defer wg.Done(); ts.Token(ctx) }()
	}
	wg.Wait()
	if ts.Fetches() != 3 {
		t.Fatalf("fetches after a concurrent re-fetch = %d, want 3 (single-flight)", ts.Fetches())
	}
}
