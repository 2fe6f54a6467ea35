package admin

import (
	"encoding/json"
	"net/http"
)

// TapBuffer is how many events a slow `monitor --live` may lag behind
// before it loses some (they are counted in the next event's dropped).
const TapBuffer = 256

// apiTap streams the readers' events as JSON lines (reader.TapEvent), one
// per frame or port change, until the client goes away or the agent
// stops. ?reader=NAME limits it to one reader.
func (s *Server) apiTap(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeJSON(w, http.StatusInternalServerError, APIError{"streaming unsupported"})
		return
	}
	events, cancel := s.opts.Tap.Subscribe(r.URL.Query().Get("reader"), TapBuffer)
	defer cancel()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	enc := json.NewEncoder(w)
	for {
		select {
		case <-r.Context().Done():
			return
		case ev := <-events:
			if err := enc.Encode(ev); err != nil {
				return
			}
			flusher.Flush()
		}
	}
}
