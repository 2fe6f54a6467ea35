package admin

import (
	"net/http"

	"scanagent/internal/alerts"
)

// AlertTest is the body of POST /api/alerts/test: what became of the test
// message for each person.
type AlertTest struct {
	Results []alerts.TestResult `json:"results"`
}

// apiAlertTest sends one test alert through the running agent, with its
// token (the CLI never fetches one of its own while the agent runs).
func (s *Server) apiAlertTest(w http.ResponseWriter, r *http.Request) {
	res, err := s.opts.AlertTest(r.Context())
	if err != nil {
		writeJSON(w, http.StatusConflict, APIError{err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, AlertTest{Results: res})
}
