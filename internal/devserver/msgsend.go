package devserver

import (
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Paths of the message endpoint and of its control listing.
const (
	MsgPath         = "/api/msgsend"
	MessagesCtlPath = "/_dev/messages"
)

// Message is one message msgsend accepted, as received.
type Message struct {
	Content     string    `json:"content"`
	Xgh         string    `json:"xgh"`
	MessageType string    `json:"messageType"`
	MessageTo   string    `json:"messageTo,omitempty"`
	AppID       string    `json:"appId"`
	ReceivedAt  time.Time `json:"receivedAt"`
}

// msgAnswer is msgsend's answer envelope, unlike scanrecord's.
type msgAnswer struct {
	Status      int    `json:"status"`
	Message     string `json:"message"`
	ErrorFields string `json:"errorFields,omitempty"`
}

// msgTypes are the messageType values scanagent may send: 1 SMS, 4 e-mail,
// 5 App message, 6 App important message.
var msgTypes = []string{"1", "4", "5", "6"}

// serveMsg emulates POST /api/msgsend strictly: a current token in the
// query string; content, xgh, messageType and appId present (appId the
// configured one), messageType one of 1, 4, 5, 6, and messageTo present for
// 1 (a mobile number) and 4 (an e-mail address). It answers
// {"status":1,"message":"成功"} or {"status":0,"message":…,"errorFields":…}.
func (s *Server) serveMsg(w http.ResponseWriter, r *http.Request) {
	log := s.log.With(keyEndpoint, MsgPath)
	s.mu.Lock()
	s.stats.MsgCalls++
	s.mu.Unlock()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "Request method '"+r.Method+"' not supported", http.StatusMethodNotAllowed)
		return
	}
	if !s.tokenOK(w, r, log, "msgsend refused: bad token") {
		return
	}
	params, status, err := s.readParams(r)
	if err != nil {
		http.Error(w, err.Error(), status)
		return
	}
	get := func(k string) string {
		if vs := params[k]; len(vs) > 0 {
			return vs[0]
		}
		return ""
	}
	m := Message{Content: get("content"), Xgh: get("xgh"), MessageType: get("messageType"),
		MessageTo: get("messageTo"), AppID: get("appId")}
	var bad []string
	for _, f := range []struct{ name, v string }{{"content", m.Content}, {"xgh", m.Xgh}, {"messageType", m.MessageType}, {"appId", m.AppID}} {
		if strings.TrimSpace(f.v) == "" || !utf8.ValidString(f.v) {
			bad = append(bad, f.name)
		}
	}
	if m.MessageType != "" && !slices.Contains(msgTypes, m.MessageType) {
		bad = append(bad, "messageType")
	}
	if (m.MessageType == "1" || m.MessageType == "4") && strings.TrimSpace(m.MessageTo) == "" {
		bad = append(bad, "messageTo")
	}
	if m.AppID != "" && m.AppID != s.opts.AppID {
		bad = append(bad, "appId")
	}
	if len(bad) > 0 {
		s.mu.Lock()
		s.stats.MsgRefused++
		s.mu.Unlock()
		log.Info("msgsend refused", keyFields, bad)
		writeJSON(w, http.StatusOK, msgAnswer{Status: 0, Message: "参数错误", ErrorFields: strings.Join(bad, ",")})
		return
	}
	m.ReceivedAt = s.now()
	s.mu.Lock()
	s.messages = append(s.messages, m)
	s.stats.MsgSent++
	s.mu.Unlock()
	log.Info("message accepted", keyXgh, m.Xgh, "messageType", m.MessageType)
	writeJSON(w, http.StatusOK, msgAnswer{Status: 1, Message: "成功"})
}

// Messages returns a copy of the accepted messages, in the order accepted.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

func (s *Server) serveMessagesCtl(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "use GET", http.StatusMethodNotAllowed)
		return
	}
	msgs := s.Messages()
	if msgs == nil {
		msgs = []Message{}
	}
	writeJSON(w, http.StatusOK, msgs)
}
