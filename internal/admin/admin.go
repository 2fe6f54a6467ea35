// Package admin serves the agent's local HTTP endpoints on admin_listen:
// GET /healthz (200 with a JSON summary while the queue is writable, 503
// otherwise). It reads state through the functions it is given and changes
// nothing itself.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"time"
)

// Health is the /healthz body.
type Health struct {
	OK       bool            `json:"ok"`
	Problems []string        `json:"problems,omitempty"`
	Pending  uint64          `json:"pending"`
	Dead     uint64          `json:"dead"`
	Platform string          `json:"platform"` // "reachable" or "failing"
	Readers  map[string]bool `json:"readers"`  // reader name → port connected
}

// Server is the admin HTTP server.
type Server struct {
	health func() Health
	srv    *http.Server
	ln     net.Listener
}

// New listens on addr (e.g. "127.0.0.1:9465") and serves health from fn.
func New(addr string, fn func() Health) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{health: fn, ln: ln}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	return s, nil
}

// Addr is the address actually listened on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

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
	h := s.health()
	w.Header().Set("Content-Type", "application/json")
	if !h.OK {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(h)
}
