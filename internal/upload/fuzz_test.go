package upload

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzClassify: any answer maps to an outcome without panicking, and only a
// 200 JSON envelope with type "success" is ever Delivered.
func FuzzClassify(f *testing.F) {
	f.Add(200, "application/json", `{"type":"success","errorFields":[]}`, "")
	f.Add(200, "text/html", `<html>portal</html>`, "")
	f.Add(429, "", ``, "120")
	f.Add(503, "", ``, "Wed, 21 Oct 2015 07:28:00 GMT")
	f.Add(403, "application/json", `{"error":"invalid_grant"}`, "")
	f.Add(200, "application/json", `{"type":"error","errorFields":"idCard"}`, "")
	f.Add(200, "application/json", "\ufeff"+`{"type":"success","errorFields":[]}`, "")
	f.Fuzz(func(t *testing.T, status int, ctype, body, retry string) {
		h := http.Header{}
		h.Set("Content-Type", ctype)
		h.Set("Retry-After", retry)
		res := Classify(status, h, []byte(body), time.Unix(1e9, 0))
		if res.RetryAfter < 0 {
			t.Fatalf("negative Retry-After %v", res.RetryAfter)
		}
		if res.Outcome == Delivered {
			var env struct{ Type string }
			trimmed := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(body), "\ufeff"))
			if status < 200 || status >= 300 || len(body) > MaxAnswer || json.Unmarshal([]byte(trimmed), &env) != nil || env.Type != "success" {
				t.Fatalf("delivered for status %d body %q", status, body)
			}
		}
	})
}

// FuzzParseExpiresIn: never panics; accepted values are numbers.
func FuzzParseExpiresIn(f *testing.F) {
	for _, s := range []string{`1209600`, `"1209600"`, `3600.5`, `null`, `"x"`, `-1`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		parseExpiresIn(json.RawMessage(raw))
	})
}
