package upload

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Outcome is what one upload attempt means for its record (docs/platform.md).
type Outcome int

// The outcomes of the table in docs/platform.md.
const (
	Transient Outcome = iota // retry with backoff, not counted
	Delivered                // type == "success": delete the record
	Dead                     // the platform refuses this record for good
	Counted                  // type == "error" without errorFields: retry, counted against max_error_attempts
	BadToken                 // 401/403/invalid_grant: re-fetch the token and retry, not counted
	Systemic                 // 404/405: the endpoint is wrong, not the record: hold the queue, never dead
)

func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case Dead:
		return "dead"
	case Counted:
		return "error"
	case BadToken:
		return "bad_token"
	case Systemic:
		return "systemic"
	}
	return "transient"
}

// Result is an outcome with its reason (for logs and `queue show`) and, for
// 408/429/503, the delay the platform asked for. Fields are the errorFields
// of a refused record, sorted; Fix says what to do when the answer names
// the fault (a captive portal, a redirect, a wrong endpoint).
type Result struct {
	Outcome    Outcome
	Reason     string
	RetryAfter time.Duration
	Fields     []string
	Fix        string

	fault *Fault // set by the uploader for a transient failure: the platform's state
}

// Fixes of the faults an answer names.
const (
	FixPortal   = "the network answers instead of the platform (a captive portal or a proxy's page): log the terminal in to the campus network, or exempt base_url's host from the portal / proxy (NO_PROXY)"
	FixEndpoint = "the platform says there is no such endpoint: check [platform] base_url and scan_path (or the platform is being redeployed; uploading resumes by itself)"
)

// envelope is the platform's answer to an API call.
type envelope struct {
	Type        *string         `json:"type"`
	Code        json.RawMessage `json:"code"`
	Content     string          `json:"content"`
	ErrorFields json.RawMessage `json:"errorFields"`
	Error       string          `json:"error"`
	Description string          `json:"error_description"`
}

// MaxAnswer is the largest answer body judged. The caller reads at most
// MaxAnswer+1 bytes, so that a longer answer is seen as too large.
const MaxAnswer = 64 << 10

// utf8BOM is stripped from an answer: some servers put it before JSON.
var utf8BOM = []byte("\xef\xbb\xbf")

// Classify maps an HTTP answer to an outcome. body is the body as read,
// at most MaxAnswer+1 bytes. It never calls a non-JSON 200 a success: a
// captive portal answers 200 too. A 2xx answer longer than MaxAnswer cannot
// be judged: it is retried, but counted against max_error_attempts, so a
// platform that always answers so cannot keep a record for ever.
func Classify(status int, header http.Header, body []byte, now time.Time) Result {
	tooLarge := len(body) > MaxAnswer
	body = bytes.TrimPrefix(bytes.TrimSpace(body), utf8BOM)
	var env envelope
	isJSON := !tooLarge && json.Unmarshal(bytes.TrimSpace(body), &env) == nil
	if isJSON && (env.Error == "invalid_grant" || env.Error == "invalid_token") {
		return Result{Outcome: BadToken, Reason: fmt.Sprintf("HTTP %d %s", status, env.Error)}
	}
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return Result{Outcome: BadToken, Reason: fmt.Sprintf("HTTP %d", status)}
	case status >= 300 && status < 400:
		return Result{Outcome: Transient, Reason: fmt.Sprintf("HTTP %d redirect not followed (a proxy or login page?)", status), Fix: FixPortal}
	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		return Result{Outcome: Transient, Reason: fmt.Sprintf("HTTP %d", status), RetryAfter: retryAfter(header.Get("Retry-After"), now)}
	case status >= 500:
		return Result{Outcome: Transient, Reason: fmt.Sprintf("HTTP %d", status)}
	case status == 404 || status == 405:
		return Result{Outcome: Systemic, Reason: fmt.Sprintf("HTTP %d%s", status, platformText(env, isJSON)), Fix: FixEndpoint}
	case status == 400 || status == 413 || status == 422:
		return Result{Outcome: Dead, Reason: fmt.Sprintf("HTTP %d%s", status, platformText(env, isJSON))}
	case status < 200 || status >= 300:
		// Not in the table: keep trying, but not for ever.
		return Result{Outcome: Counted, Reason: fmt.Sprintf("unexpected HTTP %d", status)}
	}
	if tooLarge {
		return Result{Outcome: Counted, Reason: fmt.Sprintf("HTTP %d with an answer too large to judge (over %d KiB)", status, MaxAnswer>>10)}
	}
	if !isJSON || env.Type == nil {
		return Result{Outcome: Transient, Reason: fmt.Sprintf("HTTP %d but not the platform's answer (%s)", status, describe(header.Get("Content-Type"), body)), Fix: FixPortal}
	}
	switch *env.Type {
	case "success":
		return Result{Outcome: Delivered, Reason: "success"}
	case "error":
		if hasFields(env.ErrorFields) {
			return Result{Outcome: Dead, Reason: "platform refused the record" + platformText(env, true), Fields: fieldNames(env.ErrorFields)}
		}
		return Result{Outcome: Counted, Reason: "platform error" + platformText(env, true)}
	}
	return Result{Outcome: Counted, Reason: fmt.Sprintf("unknown answer type %q", *env.Type)}
}

func platformText(env envelope, isJSON bool) string {
	if !isJSON {
		return ""
	}
	var parts []string
	if env.Content != "" {
		parts = append(parts, clip(env.Content, 120))
	}
	if hasFields(env.ErrorFields) {
		parts = append(parts, "fields "+clip(string(env.ErrorFields), 120))
	}
	if env.Error != "" {
		parts = append(parts, clip(env.Error+" "+env.Description, 120))
	}
	if len(parts) == 0 {
		return ""
	}
	return ": " + strings.Join(parts, "; ")
}

// fieldNames reads errorFields as the platform may send it: a list of
// names, an object keyed by name, or one comma-separated string. The names
// come back sorted and without repeats.
func fieldNames(raw json.RawMessage) []string {
	var names []string
	var list []any
	var obj map[string]any
	var str string
	switch {
	case json.Unmarshal(raw, &list) == nil:
		for _, v := range list {
			switch v := v.(type) {
			case string:
				names = append(names, v)
			case map[string]any: // [{"field":"appId",…}]
				for _, k := range []string{"field", "name", "fieldName"} {
					if s, ok := v[k].(string); ok {
						names = append(names, s)
						break
					}
				}
			}
		}
	case json.Unmarshal(raw, &obj) == nil:
		for k := range obj {
			names = append(names, k)
		}
	case json.Unmarshal(raw, &str) == nil:
		names = strings.Split(str, ",")
	}
	out := names[:0]
	for _, n := range names {
		if n = strings.TrimSpace(n); n != "" && len(n) <= 64 {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func hasFields(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s != "" && s != "null" && s != "[]" && s != `""` && s != "{}"
}

// maxRetryAfter caps what the platform may ask for: a longer Retry-After
// (or a nonsense one) still gets a try within the hour.
const maxRetryAfter = time.Hour

// retryAfter parses Retry-After as seconds or an HTTP date; 0 when absent.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil && secs >= 0 {
		return time.Duration(min(secs, int64(maxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), maxRetryAfter)
	}
	return 0
}

func describeBody(resp *http.Response, body []byte) string {
	return describe(resp.Header.Get("Content-Type"), body)
}

// describe names what came back instead of the JSON envelope, for a
// technician looking at the log ("text/html: <title>Campus Wi-Fi login").
func describe(ctype string, body []byte) string {
	if ctype == "" {
		ctype = "no content type"
	}
	s := strings.Join(strings.Fields(string(body)), " ")
	if !utf8.ValidString(s) {
		return ctype + ", binary body"
	}
	if s == "" {
		return ctype + ", empty body"
	}
	return ctype + ": " + clip(s, 60)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
