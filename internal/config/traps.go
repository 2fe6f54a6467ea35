package config

import (
	"fmt"
	"reflect"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unicode"
)

// Traps: values that parse and look right to a technician but are not what
// was meant: a Windows path in double quotes whose backslashes became a TAB
// and a newline, a Windows port name on Linux, a relative device name, a
// trailing space pasted with a value.

// goos is the system the configuration is checked for; a variable for tests.
var goos = runtime.GOOS

// controlOK are the keys whose values may hold control characters: a
// delimiter may be a TAB, a pattern may match one.
var controlOK = map[string]bool{"delimiter": true, "pattern": true}

// trimmed are the keys whose values never start or end with white space:
// paths, addresses, identifiers. Names shown to people (term_name) may.
var trimmed = map[string]bool{
	"data_dir": true, "log_file": true, "admin_listen": true,
	"base_url": true, "token_path": true, "scan_path": true, "client_id": true,
	"client_secret": true, "client_secret_file": true, "app_id": true, "ca_file": true,
	"timezone": true, "port": true, "roster": true, "name": true, "term_sn": true,
}

// traps checks every string value of the configuration.
func (v *validator) traps() {
	c := v.c
	for _, t := range []struct {
		table string
		val   any
	}{{"agent", c.Agent}, {"platform", c.Platform}, {"upload", c.Upload}, {"crypto", c.Crypto}, {"queue", c.Queue}} {
		v.trapStrings(t.table+".", reflect.ValueOf(t.val))
	}
	for i, r := range c.Readers {
		at := readerPath(i) + "."
		v.trapStrings(at, reflect.ValueOf(r))
		v.port(at+"port", r.Port)
	}
}

// trapStrings checks the string fields of one table (a struct value).
func (v *validator) trapStrings(at string, sv reflect.Value) {
	for i := range sv.NumField() {
		key := tomlName(sv.Type().Field(i))
		if key == "" {
			continue
		}
		switch f := sv.Field(i); f.Kind() {
		case reflect.String:
			v.trapString(at+key, key, f.String())
		case reflect.Slice:
			if f.Type().Elem().Kind() == reflect.String {
				for j := range f.Len() {
					v.trapString(at+key, key, f.Index(j).String())
				}
			}
		case reflect.Map:
			iter := f.MapRange()
			for iter.Next() {
				v.trapString(at+key+"."+iter.Key().String(), key, iter.Value().String())
			}
		}
	}
}

// trap reports a problem found here; the other checks of that key are then
// skipped.
func (v *validator) trap(path, format string, args ...any) {
	v.add(path, format, args...)
	if v.trapped == nil {
		v.trapped = map[string]bool{}
	}
	v.trapped[path] = true
}

func (v *validator) trapString(path, key, s string) {
	if !controlOK[key] {
		if strings.ContainsAny(s, "\t\n\r\b\f") {
			v.trap(path, "holds %s, which cannot be meant; in a \"double-quoted\" TOML string a backslash starts an escape (\\t is a TAB, \\n a newline): "+
				"write Windows paths and other text with backslashes in single quotes: %s = '%s'", controlNames(s), lastKey(path), unescape(s))
			return
		}
		for _, r := range s {
			if isControl(r) {
				v.trap(path, "holds control character %U; remove it: %s = %q", r, lastKey(path), strings.Map(dropControl, s))
				return
			}
		}
	}
	if trimmed[key] && s != strings.TrimSpace(s) {
		v.trap(path, "is %q, with a space at its start or end; remove it: %s = %q", s, lastKey(path), strings.TrimSpace(s))
	}
}

// controlNames describes the control characters in s ("a TAB and a
// newline"), or "" when there are none.
func controlNames(s string) string {
	var names []string
	seen := map[rune]bool{}
	for _, r := range s {
		if !isControl(r) || seen[r] {
			continue
		}
		seen[r] = true
		switch r {
		case '\t':
			names = append(names, "a TAB")
		case '\n':
			names = append(names, "a newline")
		case '\r':
			names = append(names, "a carriage return")
		default:
			names = append(names, fmt.Sprintf("the control character %U", r))
		}
	}
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

func dropControl(r rune) rune {
	if isControl(r) {
		return -1
	}
	return r
}

// isControl reports C0, DEL and C1 control characters (unicode.IsControl,
// as the scan record's field rules use).
func isControl(r rune) bool { return unicode.IsControl(r) }

// unescape writes s back as the text the user most likely typed: each
// control character as its backslash escape.
func unescape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case isControl(r):
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func lastKey(path string) string {
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[i+1:]
	}
	return path
}

var comPortRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(?i)(?:\\\\\.\\)?com([0-9]+)$`) })

// port checks a reader's port against the system it runs on.
func (v *validator) port(path, port string) {
	p := strings.TrimSpace(port)
	if p == "" || strings.HasPrefix(strings.ToLower(p), "usb:") || controlNames(p) != "" {
		return // reported elsewhere, or a USB match
	}
	if goos == "windows" {
		if strings.HasPrefix(p, "/dev/") {
			v.trap(path, `is %q, a Linux device name; on Windows a serial port is "COM3" and the like (scanagent ports lists them), or "usb:VID:PID"`, port)
		}
		return
	}
	if m := comPortRE().FindStringSubmatch(p); m != nil {
		n, _ := strconv.Atoi(m[1])
		guess := "/dev/ttyUSB0"
		if n >= 1 {
			guess = fmt.Sprintf("/dev/ttyS%d", n-1)
		}
		v.trap(path, `is %q, a Windows port name; on this system a serial port is a device such as %q or "/dev/ttyUSB0" (scanagent ports lists them), or "usb:VID:PID"`, port, guess)
		return
	}
	if !strings.HasPrefix(p, "/") {
		v.trap(path, `is %q, a relative path (under the service it would be looked for in /); did you mean %q? (scanagent ports lists the ports)`, port, "/dev/"+p)
	}
}
