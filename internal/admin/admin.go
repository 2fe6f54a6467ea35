// Package admin serves the agent's local HTTP endpoints on two listeners:
//
//   - admin_listen (TCP, New): GET /healthz, 200 with a JSON summary while
//     the queue can take scans, 503 otherwise (queue full, last write
//     failed, queue unreadable); GET /metrics, the Prometheus text
//     exposition format (metrics.go). Neither carries personal data. On a
//     loopback address a request whose Host is not a loopback name is
//     refused (DNS rebinding).
//   - data_dir/admin.sock (AF_UNIX, NewSocket): the queue API (api.go) and
//     /healthz. There is no token: whoever can open the socket file is
//     whoever may read data_dir (socket.go). The `scanagent queue`
//     subcommands are its clients while the agent runs, and `alerts test`
//     (POST /api/alerts/test, alerts.go).
//
// It gets everything through the Options it is given (small interfaces and
// functions declared here) and imports nothing of cmd. It never shows an
// idCard, not even its ciphertext, except on the records listing with
// include_idcard=1 (for `queue export --include-idcard`). It does not log.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"time"

	"scanagent/internal/alerts"
	"scanagent/internal/queue"
	"scanagent/internal/reader"
)

// Health is the /healthz body.
type Health struct {
	OK              bool     `json:"ok"`
	Problems        []string `json:"problems,omitempty"`
	Pending         uint64   `json:"pending"`
	Dead            uint64   `json:"dead"`
	QueueFull       bool     `json:"queue_full"`
	QueueWriteError string   `json:"queue_write_error,omitempty"`
	// Platform is the platform's state: unknown (no contact yet),
	// reachable, unreachable, credentials refused, held, clock skewed;
	// PlatformDetail says since when, why and the fix.
	Platform       string          `json:"platform"`
	PlatformDetail *PlatformHealth `json:"platform_detail,omitempty"`
	Readers        map[string]bool `json:"readers"` // reader name → port connected
}

// PlatformHealth is the platform's state in /healthz.
type PlatformHealth struct {
	State  string    `json:"state"`
	Since  time.Time `json:"since"`
	Reason string    `json:"reason,omitempty"`
	Fix    string    `json:"fix,omitempty"`
	// ClockSkewSeconds is the platform's clock minus the local one, from
	// the last answer's Date header; absent before the first answer.
	ClockSkewSeconds *float64 `json:"clock_skew_seconds,omitempty"`
}

// Queue is what the queue API needs of the queue (*queue.Queue has it).
type Queue interface {
	Stats() (queue.Stats, error)
	Page(state queue.State, after uint64, limit int, withIDCard bool) (queue.Page, error)
	Find(ref queue.Ref) (queue.Item, error)
	RetryOne(ctx context.Context, ref queue.Ref) (int, error)
	RetryDead(ctx context.Context) (queue.Retried, error)
	DropOne(ctx context.Context, ref queue.Ref) (queue.State, error)
}

// Options are what the servers serve. Health is required; a nil Metrics
// turns /metrics off (TCP), a nil Queue the queue API (socket).
type Options struct {
	Health  func() Health
	Metrics func() Metrics
	Queue   Queue
	// Salvage copies the readable records of a damaged queue file into
	// the live queue (POST /api/queue/salvage); nil turns the route off.
	Salvage func(ctx context.Context, file string) (queue.Salvaged, error)
	// Tap streams the readers' frames and verdicts to `monitor --live`
	// (GET /api/tap on the socket); nil turns the route off.
	Tap *reader.Tap
	// AlertTest sends one test alert (POST /api/alerts/test, socket
	// only); nil turns the route off.
	AlertTest func(ctx context.Context) ([]alerts.TestResult, error)
}

// Server is one admin HTTP listener: TCP (New) or the socket (NewSocket).
type Server struct {
	opts Options
	// base is every request's context; Run cancels it at shutdown so
	// that streaming answers (the tap) end instead of holding Shutdown.
	base       context.Context
	cancelBase context.CancelFunc
	srv        *http.Server
	ln         net.Listener
	mux        *http.ServeMux
	handler    http.Handler
}

// New listens on addr (e.g. "127.0.0.1:9465") and serves /healthz and
// /metrics there, nothing else: the queue API is never on TCP. When the
// address bound is a loopback one, requests must name a loopback host.
func New(addr string, opts Options) (*Server, error) {
	if opts.Health == nil {
		return nil, errors.New("admin: no Health function")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, ln: ln, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /healthz", s.healthz)
	if opts.Metrics != nil {
		s.mux.HandleFunc("GET /metrics", s.metrics)
	}
	s.handler = s.mux
	if ta, ok := ln.Addr().(*net.TCPAddr); ok && ta.IP.IsLoopback() {
		s.handler = loopbackHostOnly(s.mux)
	}
	s.serve()
	return s, nil
}

// NewSocket listens on the AF_UNIX socket at path (data_dir/admin.sock) and
// serves the queue API and /healthz there. Who may connect is decided by
// the file system: see listenSocket. It fails where the system has no
// AF_UNIX (wine); the caller goes on without it.
func NewSocket(path string, opts Options) (*Server, error) {
	if opts.Health == nil {
		return nil, errors.New("admin: no Health function")
	}
	ln, err := listenSocket(path)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, ln: ln, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /healthz", s.healthz)
	if opts.Queue != nil {
		s.routeQueueAPI()
	}
	if opts.Tap != nil {
		s.mux.HandleFunc("GET /api/tap", s.apiTap)
	}
	if opts.AlertTest != nil {
		s.mux.HandleFunc("POST /api/alerts/test", s.apiAlertTest)
	}
	s.handler = s.mux
	s.serve()
	return s, nil
}

func (s *Server) serve() {
	s.base, s.cancelBase = context.WithCancel(context.Background())
	s.srv = &http.Server{Handler: s.handler, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		BaseContext: func(net.Listener) context.Context { return s.base }}
}

// Addr is the address actually listened on (the socket's path for
// NewSocket).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Handler is the server's routes, for tests.
func (s *Server) Handler() http.Handler { return s.handler }

// Close stops listening without serving (for a server never Run).
func (s *Server) Close() error { return s.ln.Close() }

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.cancelBase()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	if e := <-errc; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	return err
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	h := s.opts.Health()
	status := http.StatusOK
	if !h.OK {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, h)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
