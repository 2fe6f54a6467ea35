// Package admin serves the agent's local HTTP endpoints on admin_listen
// (SPEC §6):
//
//   - GET /healthz: 200 with a JSON summary while the queue can take scans,
//     503 otherwise (queue full, last write failed, queue unreadable);
//   - GET /metrics: the Prometheus text exposition format (metrics.go);
//   - /api/queue/...: the queue API behind "Authorization: Bearer <token>",
//     the token being the content of data_dir/admin.token (token.go). The
//     `scanagent queue` subcommands are its clients while the agent runs.
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

	"scanagent/internal/queue"
)

// Health is the /healthz body.
type Health struct {
	OK              bool            `json:"ok"`
	Problems        []string        `json:"problems,omitempty"`
	Pending         uint64          `json:"pending"`
	Dead            uint64          `json:"dead"`
	QueueFull       bool            `json:"queue_full"`
	QueueWriteError string          `json:"queue_write_error,omitempty"`
	Platform        string          `json:"platform"` // "reachable" or "failing"
	Readers         map[string]bool `json:"readers"`  // reader name → port connected
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

// Options are what the server serves. Health is required; a nil Metrics
// turns /metrics off, a nil Queue (or an empty Token) the queue API.
type Options struct {
	Health  func() Health
	Metrics func() Metrics
	Queue   Queue
	// Token is the bearer token of the queue API (the content of
	// admin.token). It is compared in constant time and never written out.
	Token string
	// Salvage copies the readable records of a damaged queue file into
	// the live queue (POST /api/queue/salvage); nil turns the route off.
	Salvage func(ctx context.Context, file string) (queue.Salvaged, error)
}

// Server is the admin HTTP server.
type Server struct {
	opts Options
	srv  *http.Server
	ln   net.Listener
	mux  *http.ServeMux
}

// New listens on addr (e.g. "127.0.0.1:9465") and serves what opts gives.
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
	if opts.Queue != nil && opts.Token != "" {
		s.routeQueueAPI()
	}
	s.srv = &http.Server{Handler: s.mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second}
	return s, nil
}

// Addr is the address actually listened on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Handler is the server's routes, for tests.
func (s *Server) Handler() http.Handler { return s.mux }

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
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
