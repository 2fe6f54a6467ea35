package config

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // timezone must load on a Windows PC without Go installed

	"scanagent/internal/field"
)

// FieldNames are the fields a decoder can fill in a scan, as written in
// fields, the values of [reader.map] and regex group names.
var FieldNames = []string{"xgh", "name", "idCard", "userType", "card"}

// Validate checks every value against the ranges and choices of the
// configuration reference (config.example.toml), that the files it names
// exist and that a client secret is available. It returns every problem,
// each with its key and, for a parsed file, its position; nil means valid.
// Parse already calls it.
func (c *Config) Validate() Problems {
	v := &validator{c: c}
	v.traps()
	v.agent()
	v.platform()
	v.upload()
	v.crypto()
	v.queue()
	v.readers()
	v.alerts()
	return v.probs
}

type validator struct {
	c     *Config
	probs Problems
	// trapped are the keys traps reported: their other checks would only
	// repeat the same mistake in other words.
	trapped map[string]bool
}

// add records a problem for the key at path ("platform.timeout",
// "reader[2].baud").
func (v *validator) add(path, format string, args ...any) {
	if v.trapped[path] {
		return
	}
	p := Problem{Path: v.c.Path, Key: displayKey(path, false), Msg: fmt.Sprintf(format, args...)}
	p.Line, p.Col, _ = v.c.src.position(path)
	v.probs = append(v.probs, p)
}

// oneOf checks an enumerated value.
func (v *validator) oneOf(path, val string, allowed ...string) {
	if slices.Contains(allowed, val) {
		return
	}
	if val == "" {
		v.add(path, "is empty; use %s", orList(allowed))
		return
	}
	v.add(path, "is %q; use %s", val, orList(allowed))
}

// orList formats choices as `"a", "b" or "c"`.
func orList(choices []string) string {
	q := make([]string, len(choices))
	for i, c := range choices {
		q[i] = strconv.Quote(c)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

func (v *validator) agent() {
	a := v.c.Agent
	if a.DataDir == "" {
		v.add("agent.data_dir", "is empty; set the directory that holds queue.db and the admin socket")
	}
	v.oneOf("agent.log_level", a.LogLevel, "debug", "info", "warn", "error")
	if a.AdminListen != "" {
		_, port, err := net.SplitHostPort(a.AdminListen)
		if err == nil {
			_, err = strconv.ParseUint(port, 10, 16)
		}
		if err != nil {
			v.add("agent.admin_listen", `is %q; use host:port such as "127.0.0.1:9465", or "" to turn /healthz and /metrics off`, a.AdminListen)
		}
	}
	v.oneOf("agent.log_format", a.LogFormat, "text", "json")
	if a.LogMaxSize < 1 || a.LogMaxSize > 4096 {
		v.add("agent.log_max_size", "is %d; use 1 to 4096 (MiB)", a.LogMaxSize)
	}
	if a.LogMaxFiles < 1 || a.LogMaxFiles > 100 {
		v.add("agent.log_max_files", "is %d; use 1 to 100", a.LogMaxFiles)
	}
}

// The patterns of the validation are compiled on first use, so that a
// configuration that does not need one does not keep it in memory.
var (
	mobileRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\+?[0-9][0-9 -]{4,18}[0-9]$`) })
	emailRE  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`) })
)

func (v *validator) alerts() {
	a := v.c.Alerts
	for i, x := range a.To {
		if strings.TrimSpace(x) == "" {
			v.add("alerts.to", "entry %d is empty; list the xgh (student/staff number) of each person to tell, e.g. [\"20121032\"]", i+1)
		}
	}
	v.oneOf("alerts.message_type", a.MessageType, "1", "4", "5", "6")
	to := strings.TrimSpace(a.MessageTo)
	switch {
	case !a.Enabled() && to != "":
		v.add("alerts.to", "is empty, so alerts are off, but message_to is set; list the xgh of the people to tell, e.g. to = [\"20121032\"]")
	case a.MessageType == "1" && to == "":
		if a.Enabled() {
			v.add("alerts.message_to", `is empty; message_type "1" (SMS) needs the mobile number to text, e.g. "13800000000"`)
		}
	case a.MessageType == "1" && !mobileRE().MatchString(to):
		v.add("alerts.message_to", "is %q, not a mobile number; message_type \"1\" (SMS) needs one, e.g. \"13800000000\"", a.MessageTo)
	case a.MessageType == "4" && to == "":
		if a.Enabled() {
			v.add("alerts.message_to", `is empty; message_type "4" (e-mail) needs the address to write to, e.g. "it@example.edu.cn"`)
		}
	case a.MessageType == "4" && !emailRE().MatchString(to):
		v.add("alerts.message_to", "is %q, not an e-mail address; message_type \"4\" (e-mail) needs one, e.g. \"it@example.edu.cn\"", a.MessageTo)
	}
	for _, d := range []struct {
		key string
		val time.Duration
		eg  string
	}{{"alerts.reader_down", a.ReaderDown.Duration, "10m"}, {"alerts.backlog_age", a.BacklogAge.Duration, "1h"}, {"alerts.resend", a.Resend.Duration, "24h"}} {
		if d.val <= 0 {
			v.add(d.key, `must be more than 0, e.g. %q`, d.eg)
		}
	}
}

func (v *validator) platform() {
	p := v.c.Platform
	if u, err := url.Parse(p.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.add("platform.base_url", `is %q; use an absolute http:// or https:// URL such as "https://open.zafu.edu.cn"`, p.BaseURL)
	}
	for _, k := range []struct{ key, val, eg string }{
		{"platform.token_path", p.TokenPath, "/oauth/token"},
		{"platform.scan_path", p.ScanPath, "/api/scanrecord.jhtm"},
	} {
		if !strings.HasPrefix(k.val, "/") {
			v.add(k.key, "is %q; use a path starting with /, such as %q", k.val, k.eg)
		}
	}
	if strings.TrimSpace(p.ClientID) == "" {
		v.add("platform.client_id", "is empty; set the client id the platform issued for this agent")
	}
	if key, msg := v.c.secretProblem(); msg != "" {
		v.add(key, "%s", msg)
	}
	switch n := len(p.AppID); {
	case strings.TrimSpace(p.AppID) == "":
		v.add("platform.app_id", "is empty; set the app id the platform issued (it is also the ID-number encryption key)")
	case n > field.MaxAppID:
		v.add("platform.app_id", "is %d bytes long; at most %d (it is the AES-128 key)", n, field.MaxAppID)
	default:
		// Sent with every record: the record's rules apply.
		v.field("platform.app_id", p.AppID, field.MaxAppID, "set the app id the platform issued")
	}
	v.oneOf("platform.params", p.Params, "form", "query")
	if p.Timeout.Duration <= 0 {
		v.add("platform.timeout", `must be more than 0, e.g. "15s"`)
	}
	if p.CAFile != "" {
		if err := checkPEM(p.CAFile); err != nil {
			v.add("platform.ca_file", "%v", err)
		}
	}
	if p.TokenRefreshBefore.Duration < 0 {
		v.add("platform.token_refresh_before", `must not be negative, e.g. "24h"`)
	}
}

func (v *validator) upload() {
	u := v.c.Upload
	if u.Concurrency < 1 || u.Concurrency > 64 {
		v.add("upload.concurrency", "is %d; use 1 to 64", u.Concurrency)
	}
	if u.RetryInitial.Duration <= 0 {
		v.add("upload.retry_initial", `must be more than 0, e.g. "1s"`)
	}
	switch {
	case u.RetryMax.Duration <= 0:
		v.add("upload.retry_max", `must be more than 0, e.g. "30s"`)
	case u.RetryMax.Duration < u.RetryInitial.Duration:
		v.add("upload.retry_max", "is %s, less than retry_initial (%s); make it at least as long", u.RetryMax, u.RetryInitial)
	}
	if u.MaxErrorAttempts < 1 {
		v.add("upload.max_error_attempts", "is %d; use 1 or more", u.MaxErrorAttempts)
	}
	if u.HoldAfter < 2 {
		v.add("upload.hold_after", "is %d; use 2 or more (a record refused alone is dead at once; this many in a row refused alike hold the queue)", u.HoldAfter)
	}
	if u.MaxClockSkew.Duration <= 0 {
		v.add("upload.max_clock_skew", `must be more than 0, e.g. "2m"`)
	}
	if strings.TrimSpace(u.DateFormat) == "" {
		v.add("upload.date_format", `is empty; use the platform's format, e.g. "yyyy-MM-dd HH:mm:ss"`)
	}
	if u.Timezone == "" {
		v.add("upload.timezone", `is empty; use a zone name such as "Asia/Shanghai", or "Local"`)
	} else if _, err := time.LoadLocation(u.Timezone); err != nil {
		v.add("upload.timezone", `is %q, an unknown time zone; use a zone name such as "Asia/Shanghai"`, u.Timezone)
	}
}

func (v *validator) crypto() {
	c := v.c.Crypto
	v.oneOf("crypto.mode", c.Mode, "ecb", "cbc")
	v.oneOf("crypto.encoding", c.Encoding, "base64", "hex")
	if n := len(c.IV); n != 0 && n != 16 {
		v.add("crypto.iv", "is %d bytes long; leave it empty (the IV is then the key) or give exactly 16 bytes", n)
	}
}

func (v *validator) queue() {
	q := v.c.Queue
	if q.MaxPending < 1 {
		v.add("queue.max_pending", "is %d; use 1 or more", q.MaxPending)
	}
	if q.DedupeWindow.Duration < 0 {
		v.add("queue.dedupe_window", `must not be negative; "0s" turns debouncing off`)
	}
	if q.KeepDelivered < 0 {
		v.add("queue.keep_delivered", "is %d; use 0 (keep none) or more", q.KeepDelivered)
	}
}

var usbPortRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(?i)usb:[0-9a-f]{4}:[0-9a-f]{4}(:.*)?$`) })

func (v *validator) readers() {
	if len(v.c.Readers) == 0 {
		p := Problem{Path: v.c.Path, Key: "[[reader]]", Msg: "no reader: add a [[reader]] table for each serial scanner (see scanagent config example)"}
		v.probs = append(v.probs, p)
		return
	}
	names := map[string]int{}
	ports := map[string]int{}
	for i, r := range v.c.Readers {
		at := readerPath(i) + "."
		switch j, dup := names[r.Name]; {
		case strings.TrimSpace(r.Name) == "":
			v.add(at+"name", `is empty; give each reader a unique name such as "canteen-1"`)
		case dup:
			v.add(at+"name", "%q is also the name of %s; names must be unique", r.Name, readerPath(j))
		default:
			names[r.Name] = i
		}
		port := strings.ToLower(r.Port)
		switch j, dup := ports[port]; {
		case strings.TrimSpace(r.Port) == "":
			v.add(at+"port", `is empty; set the serial port, e.g. "/dev/ttyUSB0", "COM3" or "usb:VID:PID"`)
		case strings.HasPrefix(port, "usb:") && !usbPortRE().MatchString(r.Port):
			v.add(at+"port", `is %q; write a USB device as "usb:VID:PID" or "usb:VID:PID:SERIAL" with 4 hex digits each, e.g. "usb:1a86:7523" (see scanagent ports)`, r.Port)
		case dup:
			v.add(at+"port", "%q is also the port of %s; each port can have one reader", r.Port, readerPath(j))
		default:
			ports[port] = i
		}
		if r.Baud <= 0 {
			v.add(at+"baud", "is %d; use the scanner's speed, e.g. 9600 or 115200", r.Baud)
		}
		if r.DataBits < 5 || r.DataBits > 8 {
			v.add(at+"data_bits", "is %d; use 5, 6, 7 or 8", r.DataBits)
		}
		v.oneOf(at+"parity", r.Parity, "none", "odd", "even", "mark", "space")
		v.oneOf(at+"stop_bits", r.StopBits, "1", "1.5", "2")
		v.oneOf(at+"framing", r.Framing, "line", "idle", "stx-etx")
		if r.IdleGap.Duration <= 0 {
			v.add(at+"idle_gap", `must be more than 0, e.g. "50ms"`)
		}
		if r.MaxFrame < 16 || r.MaxFrame > 1<<20 {
			v.add(at+"max_frame", "is %d; use 16 to 1048576 (bytes)", r.MaxFrame)
		}
		v.field(at+"term_name", r.TermName, field.MaxTermName, "set the terminal name the platform knows this reader by")
		v.field(at+"term_sn", r.TermSn, field.MaxTermSn, "set the terminal serial number the platform knows this reader by")
		if r.UserType != "" {
			v.field(at+"user_type", r.UserType, field.MaxUserType, `set the label the platform expects, e.g. "学生", or "" for none`)
		}
		v.oneOf(at+"encoding", r.Encoding, Encodings...)
		v.oneOf(at+"id_check", r.IDCheck, "none", "cn18")
		for _, k := range slices.Sorted(maps.Keys(r.UserTypes)) {
			if strings.TrimSpace(k) == "" {
				v.add(at+"user_types", `has an empty code; write each code the scanner sends, e.g. { "1" = "学生" }`)
				continue
			}
			v.field(at+"user_types."+k, r.UserTypes[k], field.MaxUserType, `map the code to the label the platform expects, e.g. "学生"`)
		}
		v.fields(at+"fields", r.Fields)
		v.oneOf(at+"decoder", r.Decoder, "json", "delimited", "regex", "card")
		switch r.Decoder {
		case "delimited":
			if r.Delimiter == "" {
				v.add(at+"delimiter", `is empty; the delimited decoder needs one, e.g. ","`)
			}
			if !slices.Contains(r.Fields, "xgh") {
				v.add(at+"fields", `has no "xgh"; name the column that holds the student/staff number`)
			}
		case "regex":
			v.pattern(at+"pattern", r.Pattern)
		case "card":
			if r.Roster == "" {
				v.add(at+"roster", "is empty; the card decoder needs a roster CSV (card,xgh,name,idCard,userType)")
			} else if err := checkFile(r.Roster); err != nil {
				v.add(at+"roster", "%v", err)
			}
		}
		v.oneOf(at+"card_format", r.CardFormat, "hex", "dec10", "w26", "auto")
		renamed := map[string]string{}
		for _, k := range slices.Sorted(maps.Keys(r.Map)) {
			f := r.Map[k]
			switch prev, dup := renamed[f]; {
			case f == "" || f == "-":
			case !slices.Contains(FieldNames, f):
				v.add(at+"map."+k, `is %q, not a field; use %s, or "-" to ignore this JSON key`, f, orList(FieldNames))
			case dup:
				v.add(at+"map."+k, "renames to %q, as %q already does; map each field once", f, prev)
			default:
				renamed[f] = k
			}
		}
		for _, k := range []struct{ key, val string }{{"ack_ok", r.AckOK}, {"ack_fail", r.AckFail}} {
			if _, err := ParseHex(k.val); err != nil {
				v.add(at+k.key, `%v; write hex bytes such as "07" or "06 0d"`, err)
			}
		}
	}
}

// Encodings are the values of a reader's encoding key.
var Encodings = []string{"utf-8", "gbk", "gb18030"}

// field checks a value sent in every record with the record's own rules
// (field.Check); fix says what to write instead.
func (v *validator) field(path, val string, max int, fix string) {
	if err := field.Check(val, max); err != nil {
		v.add(path, "%v; %s", err, fix)
	}
}

// fields checks the column names of the delimited decoder.
func (v *validator) fields(path string, fields []string) {
	seen := map[string]bool{}
	for i, f := range fields {
		switch {
		case f == "" || f == "-":
		case !slices.Contains(FieldNames, f):
			v.add(path, `item %d is %q; use %s, or "" or "-" to skip a column`, i+1, f, orList(FieldNames))
		case seen[f]:
			v.add(path, "names %q twice", f)
		default:
			seen[f] = true
		}
	}
}

// pattern checks the regex decoder's pattern.
func (v *validator) pattern(path, pat string) {
	if pat == "" {
		v.add(path, `is empty; the regex decoder needs a pattern with named groups, e.g. "^(?P<xgh>\\d+),(?P<name>[^,]*)"`)
		return
	}
	re, err := regexp.Compile(pat)
	if err != nil {
		v.add(path, "does not compile: %v", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		return
	}
	names := re.SubexpNames()
	for _, n := range names {
		if n != "" && !slices.Contains(FieldNames, n) {
			v.add(path, "has group %q, which is not a field; name groups %s", n, orList(FieldNames))
		}
	}
	if !slices.Contains(names, "xgh") {
		v.add(path, "has no group named xgh; write (?P<xgh>...) around the student/staff number")
	}
}

// ParseHex reads bytes written in hex, with optional spaces between them:
// "07", "06 0d", "060D". An empty string is no bytes.
func ParseHex(s string) ([]byte, error) {
	var digits strings.Builder
	for _, r := range s {
		if r == ' ' || r == '\t' {
			continue
		}
		digits.WriteRune(r)
	}
	d := digits.String()
	if d == "" {
		return nil, nil
	}
	for _, r := range d {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return nil, fmt.Errorf("%q is not hex: %q is not a hex digit", s, r)
		}
	}
	if len(d)%2 != 0 {
		return nil, fmt.Errorf("%q has an odd number of hex digits", s)
	}
	b := make([]byte, len(d)/2)
	for i := range b {
		n, _ := strconv.ParseUint(d[2*i:2*i+2], 16, 8)
		b[i] = byte(n)
	}
	return b, nil
}

// checkFile reports whether path is a regular file that can be opened.
func checkFile(path string) error {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s does not exist", path)
	case err != nil:
		return err
	case !st.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return f.Close()
}

// readSmall reads a regular file of at most limit bytes.
func readSmall(path string, limit int64) ([]byte, error) {
	if err := checkFile(path); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// checkPEM checks that path holds at least one PEM certificate.
func checkPEM(path string) error {
	b, err := readSmall(path, 4<<20)
	if err != nil {
		return err
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		return fmt.Errorf("%s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path)
	}
	return nil
}
