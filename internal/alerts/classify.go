package alerts

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Outcome is what one msgsend answer means for its message.
type Outcome int

// The outcomes of Classify's table.
const (
	Transient Outcome = iota // keep the message, send it again after a backoff
	Sent                     // status 1: done
	Refused                  // status 0, or 400/403/413/422: the platform will not take it; drop it (logged)
	BadToken                 // 401 or invalid_token/invalid_grant: re-fetch the token (single-flight) and send again
)

func (o Outcome) String() string {
	switch o {
	case Sent:
		return "sent"
	case Refused:
		return "refused"
	case BadToken:
		return "bad_token"
	}
	return "transient"
}

// Result is an outcome with its reason.
type Result struct {
	Outcome Outcome
	Reason  string
}

// msgEnvelope is msgsend's answer: {"status":1,"message":…}; status may come
// as a number or a numeric string.
type msgEnvelope struct {
	Status      json.RawMessage `json:"status"`
	Message     string          `json:"message"`
	ErrorFields json.RawMessage `json:"errorFields"`
	Error       string          `json:"error"`
}

// Classify judges one msgsend answer. It is pure: the table is
//
//	401, or a body whose "error" is invalid_token / invalid_grant      → BadToken
//	200, JSON, status 1                                               → Sent
//	200, JSON, status 0                                               → Refused (message is the reason)
//	400, 413, 422                                                     → Refused
//	403 otherwise (this app may not send messages)                    → Refused
//	404, 405                                                          → Transient (the endpoint is missing: base_url, or a platform being redeployed)
//	200 not the envelope (an HTML portal page), 3xx, 408, 429, 5xx    → Transient
//
// A plain 403 is not a bad token: re-fetching would only invalidate the
// token the uploader shares, at every flush, for a refusal that stays.
func Classify(status int, body []byte) Result {
	var env msgEnvelope
	isJSON := json.Unmarshal(body, &env) == nil
	if status == http.StatusUnauthorized ||
		isJSON && (env.Error == "invalid_token" || env.Error == "invalid_grant") {
		return Result{BadToken, fmt.Sprintf("HTTP %d: access token refused", status)}
	}
	switch status {
	case http.StatusOK:
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return Result{Refused, fmt.Sprintf("HTTP %d%s", status, reasonOf(env, isJSON))}
	case http.StatusForbidden:
		why := reasonOf(env, isJSON)
		if isJSON && env.Error != "" {
			why = ": " + env.Error
		}
		return Result{Refused, fmt.Sprintf("HTTP 403%s: this app may not send messages (ask the platform's administrators)", why)}
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return Result{Transient, fmt.Sprintf("HTTP %d: no msgsend endpoint at this address: check [platform] base_url", status)}
	default:
		return Result{Transient, fmt.Sprintf("HTTP %d", status)}
	}
	if !isJSON || len(env.Status) == 0 {
		return Result{Transient, "HTTP 200 but not the msgsend answer (a proxy or portal page?)"}
	}
	n, err := strconv.Atoi(strings.Trim(string(env.Status), `" `))
	switch {
	case err != nil:
		return Result{Transient, "HTTP 200 with an unreadable status"}
	case n == 1:
		return Result{Sent, ""}
	}
	return Result{Refused, "status " + strconv.Itoa(n) + reasonOf(env, true)}
}

func reasonOf(env msgEnvelope, isJSON bool) string {
	if !isJSON {
		return ""
	}
	r := env.Message
	if f := strings.TrimSpace(string(env.ErrorFields)); f != "" && f != "null" && f != "[]" && f != `""` {
		r += " " + f
	}
	if r = strings.TrimSpace(r); r == "" {
		return ""
	}
	return ": " + r
}
