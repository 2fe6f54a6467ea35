package devserver

import (
	"net/http"
	"net/url"
	"testing"
)

// msgsend checks the token and the fields each messageType needs, answers
// with its own envelope (status 1/0, message) and records what it took.
func TestMsgSend(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.fetchToken(t)
	send := func(token string, p url.Values) response {
		t.Helper()
		return mustDo(t, "POST", e.ts.URL+MsgPath+"?access_token="+url.QueryEscape(token),
			"application/x-www-form-urlencoded; charset=UTF-8", p.Encode())
	}
	ok := url.Values{"content": {"读卡器断开"}, "xgh": {"20121032"}, "messageType": {"5"}, "appId": {testAppID}}
	with := func(k, v string) url.Values {
		p := url.Values{}
		for k, vs := range ok {
			p[k] = vs
		}
		if v == "" {
			p.Del(k)
		} else {
			p.Set(k, v)
		}
		return p
	}
	for _, c := range []struct {
		name   string
		p      url.Values
		status int
		fields string
	}{
		{"app message", ok, 1, ""},
		{"important", with("messageType", "6"), 1, ""},
		{"sms with number", func() url.Values { p := with("messageType", "1"); p.Set("messageTo", "13800000000"); return p }(), 1, ""},
		{"sms without number", with("messageType", "1"), 0, "messageTo"},
		{"mail without address", with("messageType", "4"), 0, "messageTo"},
		{"no content", with("content", ""), 0, "content"},
		{"no xgh", with("xgh", ""), 0, "xgh"},
		{"no appId", with("appId", ""), 0, "appId"},
		{"other appId", with("appId", "02"), 0, "appId"},
		{"wechat type", with("messageType", "3"), 0, "messageType"},
	} {
		r := send(tok, c.p)
		m := r.json(t)
		if r.status != http.StatusOK || m["status"] != float64(c.status) {
			t.Errorf("%s: %d %s, want status %d", c.name, r.status, r.body, c.status)
		}
		if c.fields != "" && m["errorFields"] != c.fields {
			t.Errorf("%s: errorFields %v, want %s", c.name, m["errorFields"], c.fields)
		}
	}
	if r := send("wrong", ok); r.status != http.StatusForbidden {
		t.Errorf("bad token: %d %s", r.status, r.body)
	}
	if r := mustDo(t, "GET", e.ts.URL+MsgPath+"?access_token="+tok, "", ""); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", r.status)
	}
	msgs := e.srv.Messages()
	if len(msgs) != 3 || msgs[0].Content != "读卡器断开" || msgs[2].MessageTo != "13800000000" {
		t.Fatalf("messages: %+v", msgs)
	}
	st := e.srv.Stats()
	if st.MsgSent != 3 || st.MsgRefused != 7 || st.MsgCalls != 12 {
		t.Fatalf("stats: %+v", st)
	}
	if r := mustDo(t, "GET", e.ts.URL+MessagesCtlPath, "", ""); r.status != 200 || len(r.body) < 10 {
		t.Fatalf("messages control: %d %s", r.status, r.body)
	}
}
