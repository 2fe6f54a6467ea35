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

// TestStringPersonalData: what the platform sends back and a transport
// error quoting a params = "query" URL or a form lose ID numbers and the
// values of idCard, name and xgh; other parameters are kept.
func TestStringPersonalData(t *testing.T) {
	r := New("demo-secret")
	queryURL := "http://p.example/api/scanrecord.jhtm?access_token=TOK&appId=01&idCard=GGX7Lbvc%2BIvk%2FW%3D%3D&name=%E5%BC%A0%E4%BC%9F" +
		"&scanDate=2026-01-02+03%3A04%3A05&termName=%E5%8C%97%E9%97%A8&termSn=GATE-1&userType=1&xgh=2026A01"
	urlErr := &url.Error{Op: "Post", URL: queryURL, Err: errors.New("connection reset by peer")}
	for _, tc := range []struct {
		in      string
		mustNot []string
		must    []string
	}{
		{urlErr.Error(), []string{"GGX7Lbvc", "%E5%BC%A0", "2026A01", "TOK&"},
			[]string{"idCard=REDACTED&", "name=REDACTED&", "xgh=REDACTED", "termName=%E5%8C%97%E9%97%A8", "termSn=GATE-1", "appId=01", "connection reset by peer"}},
		{"platform refused the record: 身份证号33010219900101123X校验失败", []string{"33010219900101123X"}, []string{"身份证号", "校验失败"}},
		{`platform error: fields {"idCard":"33010219900101123X","name":"张伟","xgh":"S1"}`, []string{"123X", "张伟", `"S1"`},
			[]string{`"idCard":"REDACTED"`, `"name":"REDACTED"`, `"xgh":"REDACTED"`}},
		{"idCard=abc&NAME=x", []string{"abc", "=x"}, []string{"idCard=REDACTED&NAME=REDACTED"}},
		{"HTTP 400: the 3301 0219 9001 0112 3X is wrong", []string{"3301 0219"}, []string{"HTTP 400"}},
		{"bad demo-secret", []string{"demo-secret"}, []string{"bad REDACTED"}},
	} {
		got := r.String(tc.in)
		for _, no := range tc.mustNot {
			if strings.Contains(got, no) {
				t.Errorf("String(%q) = %q: still has %q", tc.in, got, no)
			}
		}
		for _, want := range tc.must {
			if !strings.Contains(got, want) {
				t.Errorf("String(%q) = %q: lacks %q", tc.in, got, want)
			}
		}
	}
	var nilR *Redactor
	if got := nilR.String("name=张伟 330102199001011234"); strings.Contains(got, "张伟") || strings.Contains(got, "1234") {
		t.Errorf("nil redactor: got %q", got)
	}
}
