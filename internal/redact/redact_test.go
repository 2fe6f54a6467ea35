package redact

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	r := New("s3cret-value", "")
	r.Add("TOKEN123456")
	urlErr := &url.Error{Op: "Post", URL: "https://p.example/api/scanrecord.jhtm?access_token=TOKEN123456&x=1", Err: errors.New("EOF")}
	for _, tc := range []struct{ in, mustNot, must string }{
		{urlErr.Error(), "TOKEN123456", "access_token=REDACTED&x=1"},
		{`{"client_secret":"abc","grant_type":"x"}`, `"abc"`, `"client_secret":"REDACTED"`},
		{"bad secret s3cret-value here", "s3cret-value", "bad secret REDACTED here"},
		{"a bare TOKEN123456 in text", "TOKEN123456", "REDACTED"},
		{"ACCESS_TOKEN=zz", "zz", "ACCESS_TOKEN=REDACTED"},
	} {
		got := r.String(tc.in)
		if strings.Contains(got, tc.mustNot) || !strings.Contains(got, tc.must) {
			t.Errorf("String(%q) = %q; want no %q and a %q", tc.in, got, tc.mustNot, tc.must)
		}
	}
	var nilR *Redactor
	if got := nilR.String("?access_token=abc"); got != "?access_token=REDACTED" {
		t.Errorf("nil redactor: got %q", got)
	}
	if got := r.Error(nil); got != "" {
		t.Errorf("Error(nil) = %q, want empty", got)
	}
}
