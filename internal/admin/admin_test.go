package admin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"scanagent/internal/queue"
)

// startServer runs a Server on 127.0.0.1:0 until the test ends.
func startServer(t *testing.T, opts Options) *Server {
	t.Helper()
	s, err := New("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	return s
}

// startSocket runs a socket Server at path until the test ends.
func startSocket(t *testing.T, path string, opts Options) *Server {
	t.Helper()
	s, err := NewSocket(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	return s
}

// socketClient is an HTTP client that reaches the socket at path whatever
// the URL's host.
func socketClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}}
}

func run(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func TestHealthz(t *testing.T) {
	h := Health{OK: true, Pending: 3, Platform: "reachable", Readers: map[string]bool{"gate": true}}
	s := startServer(t, Options{Health: func() Health { return h }})
	for _, tc := range []struct {
		ok   bool
		want int
	}{{true, 200}, {false, 503}} {
		h.OK = tc.ok
		resp, err := http.Get("http://" + s.Addr() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		var got Health
		json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if resp.StatusCode != tc.want || got.Pending != 3 || !got.Readers["gate"] {
			t.Errorf("ok=%v: got %d %+v, want %d", tc.ok, resp.StatusCode, got, tc.want)
		}
	}
}

func TestMetricsFormat(t *testing.T) {
	m := Metrics{
		Readers: []ReaderMetrics{
			{Name: "gate-1", Read: 5, Rejected: 1, Debounced: 1, Stored: 3, Connected: true},
			{Name: `odd "name"\` + "\n", Read: 1},
		},
		Uploads:          map[string]int64{"transient": 2, "delivered": 3},
		Pending:          1000000,
		Dead:             1,
		OldestPendingAge: 12.5,
		TokenFetches:     2,
		QueueFull:        true,
		TokenFailures:    4,
		Build:            BuildInfo{Version: "1.2.3", Commit: "abc", GoVersion: "go1.26"},
		StartTime:        time.Unix(1767323045, 5e8),
		AlertsActive:     1,
		Alerts:           map[string]int64{"sent": 2},
		PlatformStates:   map[string]bool{"reachable": false, "held": true, "clock skewed": false},
		ClockSkew:        -94608000,
		ClockSkewKnown:   true,
	}
	m.Readers[0].LastScan = time.Unix(1767323045, 0)
	m.Readers[0].TermName, m.Readers[0].TermSn = "北门闸机", "GATE-0001"
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	WriteMetrics(w, m)
	w.Flush()
	out := b.String()
	for _, want := range []string{
		"# HELP scanagent_scans_read_total Frames read from the reader's port, rejected ones included.\n# TYPE scanagent_scans_read_total counter\n" +
			"scanagent_scans_read_total{reader=\"gate-1\"} 5\nscanagent_scans_read_total{reader=\"odd \\\"name\\\"\\\\\\n\"} 1\n",
		"scanagent_reader_connected{reader=\"gate-1\"} 1\n",
		"scanagent_uploads_total{outcome=\"delivered\"} 3\nscanagent_uploads_total{outcome=\"transient\"} 2\n",
		"# TYPE scanagent_queue_pending gauge\nscanagent_queue_pending 1000000\n",
		"scanagent_queue_oldest_pending_age_seconds 12.5\n",
		"scanagent_queue_full 1\n",
		"scanagent_queue_write_failed 0\n",
		"# TYPE scanagent_token_fetches_total counter\nscanagent_token_fetches_total 2\n",
		"scanagent_token_failures_total 4\n",
		"scanagent_last_scan_timestamp_seconds{reader=\"gate-1\"} 1767323045\n",
		"scanagent_last_delivery_timestamp_seconds 0\n",
		"scanagent_process_start_time_seconds 1767323045.5\n",
		`scanagent_build_info{version="1.2.3",commit="abc",goversion="go1.26"} 1` + "\n",
		`scanagent_reader_info{reader="gate-1",term_name="北门闸机",term_sn="GATE-0001"} 1` + "\n",
		"scanagent_alerts_active 1\n",
		`scanagent_alert_messages_total{outcome="sent"} 2` + "\n",
		"scanagent_platform_state{state=\"clock skewed\"} 0\nscanagent_platform_state{state=\"held\"} 1\nscanagent_platform_state{state=\"reachable\"} 0\n",
		"# TYPE scanagent_platform_clock_skew_seconds gauge\nscanagent_platform_clock_skew_seconds -94608000\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q:\n%s", want, out)
		}
	}
	// Every line is a comment or "name{labels} value"; no family twice.
	types := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name := strings.Fields(f)[0]
			if types[name] {
				t.Errorf("family %s twice", name)
			}
			types[name] = true
			continue
		}
		if strings.HasPrefix(line, "# HELP ") {
			continue
		}
		if !strings.HasPrefix(line, "scanagent_") || strings.Count(line, " ") < 1 {
			t.Errorf("bad sample line %q", line)
		}
	}

	s := startServer(t, Options{Health: func() Health { return Health{OK: true} }, Metrics: func() Metrics { return m }})
	resp, err := http.Get("http://" + s.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ContentType || string(body) != out {
		t.Fatalf("GET /metrics: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// apiClient calls the queue API through a socket.
type apiClient struct {
	t      *testing.T
	client *http.Client
}

func (c apiClient) do(method, path string, body io.Reader, out any) int {
	c.t.Helper()
	req, err := http.NewRequest(method, "http://scanagent"+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			c.t.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
	return resp.StatusCode
}

func TestQueueAPI(t *testing.T) {
	ctx := context.Background()
	q, err := queue.Open(filepath.Join(t.TempDir(), "queue.db"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var ids []uint64
	for _, x := range []string{"a", "b", "c"} {
		r := &queue.Record{Reader: "gate", Xgh: x, IDCard: "CIPHERTEXT", ScanTime: time.Unix(1000, 0)}
		if err := q.Enqueue(ctx, r); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	if err := q.Kill(ctx, ids[1], "errorFields: idCard"); err != nil {
		t.Fatal(err)
	}
	if err := q.Reject(ctx, &queue.Rejection{Reader: "gate", Raw: []byte("junk"), Reason: "no xgh"}); err != nil {
		t.Fatal(err)
	}
	opts := Options{Health: func() Health { return Health{OK: true} }, Queue: q}
	// On TCP: no queue API at all, whatever the request carries.
	tcp := startServer(t, opts)
	for _, path := range []string{"/api/queue/stats", "/api/queue/records?state=dead&include_idcard=1"} {
		resp, err := http.Get("http://" + tcp.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Fatalf("TCP %s: %d, want 404", path, resp.StatusCode)
		}
	}
	sock := filepath.Join(t.TempDir(), SocketFile)
	startSocket(t, sock, opts)
	c := apiClient{t, socketClient(sock)}
	var st queue.Stats
	if code := c.do("GET", "/api/queue/stats", nil, &st); code != 200 || st.Pending != 2 || st.Dead != 1 || st.Rejected != 1 {
		t.Fatalf("stats: %d %+v", code, st)
	}
	var page RecordsPage
	if code := c.do("GET", "/api/queue/records?state=pending&limit=1", nil, &page); code != 200 || len(page.Items) != 1 ||
		page.Items[0].Record.IDCard != queue.MaskedIDCard || page.NextAfter != ids[0] {
		t.Fatalf("records page 1: %d %+v", code, page)
	}
	page = RecordsPage{}
	if code := c.do("GET", "/api/queue/records?after="+u(ids[0]), nil, &page); code != 200 || len(page.Items) != 1 ||
		page.Items[0].Record.Xgh != "c" || page.NextAfter != 0 {
		t.Fatalf("records page 2: %d %+v", code, page)
	}
	page = RecordsPage{}
	if code := c.do("GET", "/api/queue/records?state=rejected", nil, &page); code != 200 || len(page.Items) != 1 || page.Items[0].Rejection.Reason != "no xgh" {
		t.Fatalf("rejected: %d %+v", code, page)
	}
	page = RecordsPage{}
	if c.do("GET", "/api/queue/records?state=dead&include_idcard=1", nil, &page); page.Items[0].Record.IDCard != "CIPHERTEXT" {
		t.Fatalf("include_idcard=1: %+v", page.Items[0].Record)
	}
	for _, bad := range []string{"state=bogus", "limit=0", "limit=x", "after=-1"} {
		if code := c.do("GET", "/api/queue/records?"+bad, nil, nil); code != 400 {
			t.Errorf("%s: %d, want 400", bad, code)
		}
	}
	var it queue.Item
	if code := c.do("GET", "/api/queue/records/"+u(ids[1]), nil, &it); code != 200 || it.State != queue.StateDead || it.Record.IDCard != queue.MaskedIDCard {
		t.Fatalf("record: %d %+v", code, it)
	}
	if code := c.do("GET", "/api/queue/records/999", nil, nil); code != 404 {
		t.Fatalf("missing record: %d, want 404", code)
	}
	if code := c.do("POST", "/api/queue/records/"+u(ids[0])+"/retry", nil, nil); code != 409 {
		t.Fatalf("retry of a pending record: %d, want 409", code)
	}
	var rt Retried
	if code := c.do("POST", "/api/queue/records/"+u(ids[1])+"/retry", nil, &rt); code != 200 || rt.Retried != 1 {
		t.Fatalf("retry: %d %+v", code, rt)
	}
	if err := q.Kill(ctx, ids[0], "x"); err != nil {
		t.Fatal(err)
	}
	if code := c.do("POST", "/api/queue/retry-dead", nil, &rt); code != 200 || rt.Retried != 1 {
		t.Fatalf("retry-dead: %d %+v", code, rt)
	}
	var dr Dropped
	if code := c.do("DELETE", "/api/queue/records/"+u(ids[2]), nil, &dr); code != 200 || dr.State != queue.StatePending {
		t.Fatalf("drop: %d %+v", code, dr)
	}
	// Item 2: rejected frames are r<N> in paths and JSON; 1 is a scan record.
	it = queue.Item{}
	if code := c.do("GET", "/api/queue/records/r1", nil, &it); code != 200 || it.State != queue.StateRejected || it.Rejection.ID != 1 {
		t.Fatalf("record r1: %d %+v", code, it)
	}
	if code := c.do("POST", "/api/queue/records/r1/retry", nil, nil); code != 409 {
		t.Fatalf("retry of a rejected frame: %d, want 409", code)
	}
	for _, bad := range []string{"0", "r0", "rr1", "r", "x1", "-1", "+1"} {
		if code := c.do("GET", "/api/queue/records/"+bad, nil, nil); code != 400 {
			t.Errorf("record %q: %d, want 400", bad, code)
		}
	}
	dr = Dropped{}
	if code := c.do("DELETE", "/api/queue/records/r1", nil, &dr); code != 200 || dr.State != queue.StateRejected || dr.ID != "r1" {
		t.Fatalf("drop r1: %d %+v", code, dr)
	}
	if code := c.do("GET", "/api/queue/stats", nil, &st); code != 200 || st.Pending != 2 || st.Dead != 0 || st.Rejected != 0 {
		t.Fatalf("stats at the end: %+v", st)
	}
	if code := c.do("POST", "/api/queue/salvage", strings.NewReader(`{"file":"x"}`), nil); code != 404 {
		t.Fatalf("salvage without a Salvage function: %d, want 404", code)
	}
}

func u(id uint64) string { return fmt.Sprint(id) }

// emptyQueue is a real, empty queue in a temporary directory.
func emptyQueue(t *testing.T) *queue.Queue {
	t.Helper()
	q, err := queue.Open(filepath.Join(t.TempDir(), "queue.db"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// TestTCPHostCheck: on a loopback address, /healthz and /metrics answer only
// requests naming a loopback host (DNS rebinding).
func TestTCPHostCheck(t *testing.T) {
	s := startServer(t, Options{Health: func() Health { return Health{OK: true} }, Metrics: func() Metrics { return Metrics{} }})
	_, port, _ := net.SplitHostPort(s.Addr())
	for _, tc := range []struct {
		host string
		want int
	}{
		{"127.0.0.1:" + port, 200}, {"localhost:" + port, 200}, {"LOCALHOST", 200}, {"[::1]:" + port, 200}, {"127.8.9.10", 200},
		{"evil.example:" + port, 421}, {"attacker.localhost.evil.example", 421}, {"10.0.0.1:" + port, 421}, {"localhost.evil.example", 421},
	} {
		for _, path := range []string{"/healthz", "/metrics"} {
			req, _ := http.NewRequest("GET", "http://"+s.Addr()+path, nil)
			req.Host = tc.host
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("Host %q %s: %d, want %d", tc.host, path, resp.StatusCode, tc.want)
			}
		}
	}
}

// TestTCPAnyHostOffLoopback: a non-loopback bind (fleet scraping) answers
// whatever Host the scraper uses.
func TestTCPAnyHostOffLoopback(t *testing.T) {
	ifaces, _ := net.InterfaceAddrs()
	var ip net.IP
	for _, a := range ifaces {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			ip = n.IP
			break
		}
	}
	if ip == nil {
		t.Skip("no non-loopback IPv4 address")
	}
	s, err := New(net.JoinHostPort(ip.String(), "0"), Options{Health: func() Health { return Health{OK: true} }})
	if err != nil {
		t.Fatal(err)
	}
	run(t, s)
	req, _ := http.NewRequest("GET", "http://"+s.Addr()+"/healthz", nil)
	req.Host = "agent-17.campus.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("Host %q on %s: %d, want 200", req.Host, s.Addr(), resp.StatusCode)
	}
}
