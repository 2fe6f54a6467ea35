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
	DefaultLimit = 100
	MaxLimit     = 10000
)

// RecordsPage is the body of GET /api/queue/records.
type RecordsPage struct {
	State queue.State  `json:"state"`
	Items []queue.Item `json:"items"`
	// NextAfter is the after= of the next page; 0 when this was the last.
	NextAfter uint64 `json:"next_after,omitempty"`
}

// Retried is the body of the retry routes.
type Retried struct {
	Retried int `json:"retried"`
}

// Dropped is the body of DELETE /api/queue/records/{id}.
type Dropped struct {
	ID    uint64      `json:"id"`
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
	case errors.Is(err, queue.ErrFull), errors.Is(err, queue.ErrAlreadySalvaged):
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
		if err != nil || n < 1 || n > MaxLimit {
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
	withIDCard := q.Get("include_idcard") == "1"
	items, err := s.opts.Queue.List(state, after, limit)
	if err != nil {
		apiFail(w, err)
		return
	}
	page := RecordsPage{State: state, Items: make([]queue.Item, 0, len(items))}
	for _, it := range items {
		if !withIDCard {
			it = it.Masked()
		}
		page.Items = append(page.Items, it)
	}
	if len(items) == limit {
		page.NextAfter = itemID(items[len(items)-1])
	}
	writeJSON(w, http.StatusOK, page)
}

func itemID(it queue.Item) uint64 {
	if it.Rejection != nil {
		return it.Rejection.ID
	}
	if it.Record != nil {
		return it.Record.ID
	}
	return 0
}

func pathID(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil || id == 0 {
		badRequest(w, "record ID: want a positive number")
		return 0, false
	}
	return id, true
}

func (s *Server) apiRecord(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	it, err := s.opts.Queue.Get(id)
	if err != nil {
		apiFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, it.Masked())
}

func (s *Server) apiRetry(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	it, err := s.opts.Queue.Get(id)
	if err != nil {
		apiFail(w, err)
		return
	}
	if it.State != queue.StateDead {
		writeJSON(w, http.StatusConflict, APIError{fmt.Sprintf("record %d is %s, not dead: only dead records can be retried", id, it.State)})
		return
	}
	n, err := s.opts.Queue.Retry(r.Context(), id)
	if err != nil {
		apiFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Retried{n})
}

func (s *Server) apiRetryDead(w http.ResponseWriter, r *http.Request) {
	n, err := s.opts.Queue.Retry(r.Context())
	if err != nil {
		apiFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Retried{n})
}

func (s *Server) apiDrop(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	it, err := s.opts.Queue.Get(id)
	if err != nil {
		apiFail(w, err)
		return
	}
	if err := s.opts.Queue.Drop(r.Context(), it.State, id); err != nil {
		apiFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Dropped{ID: id, State: it.State})
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
