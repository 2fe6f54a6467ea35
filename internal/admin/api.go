package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"

	"scanagent/internal/queue"
)

// Records pages: the default and the largest limit of one listing.
const (
	DefaultLimit = queue.DefaultPageLimit
	MaxLimit     = queue.MaxPageLimit
)

// RecordsPage is the body of GET /api/queue/records.
type RecordsPage = queue.Page

// Retried is the body of the retry routes.
type Retried = queue.Retried

// Dropped is the body of DELETE /api/queue/records/{id}.
type Dropped struct {
	ID    string      `json:"id"` // as in the path: 12, or r12 for a rejected frame
	State queue.State `json:"state"`
}

// SalvageRequest is the body of POST /api/queue/salvage.
type SalvageRequest struct {
	File string `json:"file"`
}

// APIError is the body of every error answer of the queue API.
type APIError struct {
	Error string `json:"error"`
}

func (s *Server) routeQueueAPI() {
	s.mux.HandleFunc("GET /api/queue/stats", s.apiStats)
	s.mux.HandleFunc("GET /api/queue/records", s.apiRecords)
	s.mux.HandleFunc("GET /api/queue/records/{id}", s.apiRecord)
	s.mux.HandleFunc("POST /api/queue/records/{id}/retry", s.apiRetry)
	s.mux.HandleFunc("POST /api/queue/retry-dead", s.apiRetryDead)
	s.mux.HandleFunc("DELETE /api/queue/records/{id}", s.apiDrop)
	if s.opts.Salvage != nil {
		s.mux.HandleFunc("POST /api/queue/salvage", s.apiSalvage)
	}
}

// apiFail answers err with the status that fits it.
func apiFail(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, queue.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		status = http.StatusNotFound
	case errors.Is(err, queue.ErrFull), errors.Is(err, queue.ErrAlreadySalvaged), errors.Is(err, queue.ErrState):
		status = http.StatusConflict
	case errors.Is(err, queue.ErrWrite):
		status = http.StatusInsufficientStorage
	case errors.Is(err, queue.ErrClosed):
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, APIError{err.Error()})
}

func badRequest(w http.ResponseWriter, format string, a ...any) {
	writeJSON(w, http.StatusBadRequest, APIError{fmt.Sprintf(format, a...)})
}

func (s *Server) apiStats(w http.ResponseWriter, _ *http.Request) {
	st, err := s.opts.Queue.Stats()
	if err != nil {
		apiFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) apiRecords(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := queue.StatePending
	if v := q.Get("state"); v != "" {
		st, err := queue.ParseState(v)
		if err != nil {
			badRequest(w, "state: %v", err)
			return
		}
		state = st
	}
	limit := DefaultLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLimit { // Page checks it too; this is the 400
			badRequest(w, "limit: want a number from 1 to %d", MaxLimit)
			return
		}
		limit = n
	}
	var after uint64
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			badRequest(w, "after: want a record ID")
			return
		}
		after = n
	}
	page, err := s.opts.Queue.Page(state, after, limit, q.Get("include_idcard") == "1")
	if err != nil {
		apiFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// pathRef reads {id}: 12 for a scan record, r12 for a rejected frame.
func pathRef(w http.ResponseWriter, r *http.Request) (queue.Ref, bool) {
	ref, err := queue.ParseRef(r.PathValue("id"))
	if err != nil {
		badRequest(w, "%v", err)
		return queue.Ref{}, false
	}
	return ref, true
}

func (s *Server) apiRecord(w http.ResponseWriter, r *http.Request) {
	ref, ok := pathRef(w, r)
	if !ok {
		return
	}
	it, err := s.opts.Queue.Find(ref)
	if err != nil {
		apiFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, it.Masked())
}

func (s *Server) apiRetry(w http.ResponseWriter, r *http.Request) {
	ref, ok := pathRef(w, r)
	if !ok {
		return
	}
	n, err := s.opts.Queue.RetryOne(r.Context(), ref)
	if err != nil {
		apiFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Retried{Retried: n})
}

func (s *Server) apiRetryDead(w http.ResponseWriter, r *http.Request) {
	res, err := s.opts.Queue.RetryDead(r.Context())
	if err != nil {
		apiFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) apiDrop(w http.ResponseWriter, r *http.Request) {
	ref, ok := pathRef(w, r)
	if !ok {
		return
	}
	st, err := s.opts.Queue.DropOne(r.Context(), ref)
	if err != nil {
		apiFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Dropped{ID: ref.String(), State: st})
}

func (s *Server) apiSalvage(w http.ResponseWriter, r *http.Request) {
	var req SalvageRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil || req.File == "" {
		badRequest(w, `body: want {"file": "PATH"}`)
		return
	}
	res, err := s.opts.Salvage(r.Context(), req.File)
	if err != nil {
		apiFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}
