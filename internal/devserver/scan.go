package devserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"scanagent/internal/redact"
)

// ScanFields are the parameters of a scan record besides access_token, all
// required, in the platform document's order.
var ScanFields = []string{"termName", "termSn", "name", "xgh", "idCard", "userType", "scanDate", "appId"}

// envelope is the platform's answer to an API call.
type envelope struct {
	Type        string   `json:"type"`
	Code        string   `json:"code"`
	Content     string   `json:"content"`
	Anchor      string   `json:"anchor"`
	ErrorFields []string `json:"errorFields"`
	Data        any      `json:"data"`
}

func (s *Server) serveScan(w http.ResponseWriter, r *http.Request) {
	log := s.log.With(keyEndpoint, ScanPath)

	if s.opts.Latency > 0 {
		if !s.bufferBody(w, r) || !s.sleep(r, s.opts.Latency) {
			return
		}
	}

	s.mu.Lock()
	fail := s.opts.FailRate > 0 && s.rand.Float64() < s.opts.FailRate
	if fail {
		s.stats.Failed++
	}
	s.mu.Unlock()
	if fail {
		log.Debug("injected failure", keyStatus, http.StatusServiceUnavailable)
		serve503(w)
		return
	}

	if r.Method != http.MethodPost {
		s.refuse(RefusedMethod)
		log.Info("scan call refused", keyStatus, http.StatusMethodNotAllowed, keyReason, "method "+r.Method)
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "Request method '"+r.Method+"' not supported", http.StatusMethodNotAllowed)
		return
	}

	if !s.tokenOK(w, r, log, "scan call refused: bad token") {
		return
	}

	params, status, err := s.readParams(r)
	if err != nil {
		class := RefusedBadBody
		if status == http.StatusRequestEntityTooLarge {
			class = RefusedTooLarge
		}
		s.refuse(class)
		log.Info("scan call refused", keyStatus, status, keyReason, err.Error())
		http.Error(w, err.Error(), status)
		return
	}

	rec, fields, classes, problems := s.check(params)
	if len(fields) > 0 {
		s.refuse(classes...)
		log.Info("scan record refused", keyFields, fields, keyReason, strings.Join(problems, "; "),
			keyXgh, rec.Xgh, keyTermSn, rec.TermSn)
		writeJSON(w, http.StatusOK, envelope{
			Type: "error", Code: "0", Content: strings.Join(problems, "; "),
			Anchor: "undefined", ErrorFields: fields,
		})
		return
	}

	rec.ReceivedAt = s.now()
	s.mu.Lock()
	s.records = append(s.records, rec)
	s.stats.Accepted++
	if s.opts.Log != nil {
		line, _ := json.Marshal(rec) // IDCardPlain is not marshalled
		if _, err := s.opts.Log.Write(append(line, '\n')); err != nil {
			log.Warn("cannot write record log", "err", err)
		}
	}
	s.mu.Unlock()
	log.Info("scan record accepted", keyXgh, rec.Xgh, keyTermSn, rec.TermSn, keyIDCard, rec.IDCardMasked)
	writeJSON(w, http.StatusOK, envelope{
		Type: "success", Code: "1", Content: "成功", Anchor: "undefined", ErrorFields: []string{},
	})
}

func (s *Server) refuse(classes ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.RefusedCalls++
	for _, c := range classes {
		s.stats.Refused[c]++
	}
}

// checkTokenLocked returns 0 if token is the current, unexpired token, or the
// tokenOK checks the call's access_token, read from the query string only
// as the platform documents (one in the body does not count), and answers
// a bad one as the platform does: 403 with invalid_grant.
func (s *Server) tokenOK(w http.ResponseWriter, r *http.Request, log *slog.Logger, refused string) bool {
	token := r.URL.Query().Get("access_token")
	s.mu.Lock()
	status, why := s.checkTokenLocked(token)
	if status != 0 {
		s.stats.BadToken++
	}
	s.mu.Unlock()
	if status != 0 {
		log.Info(refused, keyStatus, status, keyReason, why, keyToken, fingerprint(token))
		writeJSON(w, status, oauthError{"invalid_grant", "Access token is expired"})
		return false
	}
	return true
}

// status to answer and why.
func (s *Server) checkTokenLocked(token string) (int, string) {
	switch {
	case token == "":
		return http.StatusForbidden, "no access_token in the query string"
	case s.token == "" || !equal(token, s.token):
		return http.StatusForbidden, "unknown or superseded token"
	case !s.now().Before(s.expiresAt):
		return http.StatusUnauthorized, "expired token"
	}
	return 0, ""
}

// readParams returns the parameters of the form body and of the query
// string, the body's first.
func (s *Server) readParams(r *http.Request) (url.Values, int, error) {
	params := url.Values{}
	body, err := s.readBody(r)
	switch {
	case errors.Is(err, errTooLarge):
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("request body over %d bytes", s.maxBody)
	case err != nil:
		return nil, http.StatusBadRequest, errors.New("cannot read request body")
	}
	if len(body) > 0 {
		mt, mp, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		// A body of another type is not read, as a servlet container would
		// not: its parameters are missing.
		if err == nil && mt == "application/x-www-form-urlencoded" {
			if cs, ok := mp["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
				return nil, http.StatusUnsupportedMediaType, fmt.Errorf("charset %q: the platform expects UTF-8", cs)
			}
			form, err := url.ParseQuery(string(body))
			if err != nil {
				return nil, http.StatusBadRequest, errors.New("malformed application/x-www-form-urlencoded body")
			}
			for k, vs := range form {
				params[k] = append(params[k], vs...)
			}
		}
	}
	for k, vs := range r.URL.Query() {
		if k != "access_token" {
			params[k] = append(params[k], vs...)
		}
	}
	return params, 0, nil
}

// check validates the parameters of a scan record. It returns the record and,
// if it is refused, the error fields, the refusal classes and one message a
// problem. No message contains a parameter's value.
func (s *Server) check(params url.Values) (rec Record, fields, classes, problems []string) {
	seen := map[string]bool{}
	bad := func(field, class, problem string) {
		fields = append(fields, field)
		if !seen[class] {
			seen[class] = true
			classes = append(classes, class)
		}
		problems = append(problems, field+": "+problem)
	}
	v := map[string]string{}
	for _, f := range ScanFields {
		vs := params[f]
		switch {
		case len(vs) == 0 || strings.TrimSpace(vs[0]) == "":
			bad(f, RefusedMissing, "required")
			continue
		case !sameValues(vs):
			bad(f, RefusedMissing, "given more than once with different values")
			continue
		case !utf8.ValidString(vs[0]):
			bad(f, RefusedEncoding, "not UTF-8")
			continue
		}
		v[f] = vs[0]
	}
	rec = Record{
		TermName: v["termName"], TermSn: v["termSn"], Name: v["name"], Xgh: v["xgh"],
		IDCard: v["idCard"], UserType: v["userType"], ScanDate: v["scanDate"], AppID: v["appId"],
	}
	if rec.AppID != "" && rec.AppID != s.opts.AppID {
		bad("appId", RefusedAppID, "not this application's appId")
	}
	if rec.IDCard != "" {
		plain, err := s.cipher.Decrypt(rec.IDCard)
		switch {
		case err != nil:
			bad("idCard", RefusedIDCard, "cannot be decrypted with the appId's key: "+err.Error())
		case !plausibleID(plain):
			bad("idCard", RefusedIDCard, "does not decrypt to an ID number (15 digits, or 17 digits and a digit or X)")
		default:
			rec.IDCardPlain = plain
			rec.IDCardMasked = redact.ID(plain)
		}
	}
	if rec.ScanDate != "" {
		// The length check refuses fractional seconds, which time.Parse
		// accepts after a seconds field.
		if _, err := time.Parse(ScanDateFmt, rec.ScanDate); err != nil || len(rec.ScanDate) != len(ScanDateFmt) {
			bad("scanDate", RefusedScanDate, `not a date and time as "yyyy-MM-dd HH:mm:ss"`)
		}
	}
	return rec, fields, classes, problems
}

func sameValues(vs []string) bool {
	for _, v := range vs[1:] {
		if v != vs[0] {
			return false
		}
	}
	return true
}

// plausibleID reports whether s looks like a resident ID number: 15 digits,
// or 17 digits and a check character (digit or X). The checksum is not
// verified: test data rarely has a valid one.
func plausibleID(s string) bool {
	if len(s) != 15 && len(s) != 18 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '0' && c <= '9' || i == 17 && c == 'X' {
			continue
		}
		return false
	}
	return true
}

// ---- control endpoints ----

func (s *Server) serveModeCtl(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost:
		m, err := ParseMode(r.FormValue("m"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var d time.Duration
		if ds := r.FormValue("d"); ds != "" {
			if d, err = time.ParseDuration(ds); err != nil || d < 0 {
				http.Error(w, fmt.Sprintf("d=%q: want a duration such as 30s", ds), http.StatusBadRequest)
				return
			}
		}
		s.mu.Lock()
		if d > 0 {
			s.slow = d
		}
		s.setModeLocked(m)
		s.mu.Unlock()
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "use GET or POST", http.StatusMethodNotAllowed)
		return
	}
	s.mu.Lock()
	resp := map[string]string{"mode": s.mode.String(), "slowDelay": s.slow.String()}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) serveStatsCtl(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "use GET", http.StatusMethodNotAllowed)
		return
	}
	writeJSON(w, http.StatusOK, s.Stats())
}
