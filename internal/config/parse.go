package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// Load reads the configuration file at path and parses it with [Parse].
// A missing file is an error that matches fs.ErrNotExist.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w (create it with: scanagent config example > %s)", err, path)
		}
		if errors.Is(err, fs.ErrPermission) {
			return nil, fmt.Errorf("%w: %s", err, permissionFix())
		}
		return nil, err
	}
	return Parse(data, path)
}

// Parse reads a TOML configuration. path names the file in problems and is
// the base for relative paths; it may be "".
//
// Every key starts at its [Default] value, and each [[reader]] table at
// [DefaultReader]; the file only needs the keys it changes. The relative
// paths in the file (data_dir, log_file, client_secret_file, ca_file and
// each reader's roster) are resolved against the directory of path, not the
// working directory: a Windows service starts in System32. With path "",
// they are left as written.
//
// Parse returns every problem it finds as [Problems], with the file, line,
// column and key of each where known: a syntax error (which stops
// parsing), or else all unknown keys (TOML keys are case-sensitive, so
// "Baud" is unknown too), values of the wrong type, and what [Config.Validate]
// reports. On error the Config is nil.
func Parse(data []byte, path string) (*Config, error) {
	cfg, probs := parse(data, path)
	if cfg != nil {
		seen := make(map[string]bool, len(probs))
		for _, p := range probs {
			seen[p.Key] = true
		}
		for _, p := range cfg.Validate() {
			if !seen[p.Key] || p.Key == "" {
				probs = append(probs, p)
			}
		}
	}
	if len(probs) > 0 {
		probs.sortByPosition()
		return nil, probs
	}
	return cfg, nil
}

// parse decodes without validating. It returns a nil Config only for a
// file that cannot be read as TOML at all.
func parse(data []byte, path string) (*Config, Problems) {
	text, p := decodeText(data)
	if p != "" {
		return nil, Problems{{Path: path, Msg: p}}
	}
	cfg := Default()
	cfg.Path = path

	// Decode into a mirror of Config whose fields are all toml.Primitive:
	// this can only fail on syntax, and each value is then decoded on its
	// own so that one bad value does not hide the others.
	top := reflect.New(mirrorOf(reflect.TypeOf(cfg)))
	md, err := toml.Decode(text, top.Interface())
	if err != nil {
		return nil, Problems{syntaxProblem(path, text, err)}
	}
	d := &decoder{md: &md, src: scanSource(text), path: path}
	cfg.src = d.src
	cv := reflect.ValueOf(&cfg).Elem()
	tv := top.Elem()
	for i := range tv.NumField() {
		f := tv.Type().Field(i)
		if tv.Field(i).IsZero() {
			continue
		}
		prim := tv.Field(i).Interface().(toml.Primitive)
		name := tomlName(f)
		if f.Name == "Readers" {
			d.readers(prim, &cfg)
			continue
		}
		dst := cv.FieldByName(f.Name)
		m := reflect.New(mirrorOf(dst.Type()))
		if err := md.PrimitiveDecode(prim, m.Interface()); err != nil {
			d.failed = append(d.failed, toml.Key{name})
			d.add(name, err, fmt.Sprintf("must be a table: write [%s] on a line of its own, with its keys below it", name))
			continue
		}
		d.fields(m.Elem(), dst, toml.Key{name}, name)
	}
	d.unknownKeys()
	cfg.resolvePaths()
	return &cfg, d.probs
}

// decodeText turns the file into a string, dropping a UTF-8 byte order mark
// (Notepad writes one). It returns a problem for UTF-16 files.
func decodeText(data []byte) (string, string) {
	switch {
	case len(data) >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF:
		data = data[3:]
	case len(data) >= 2 && (data[0] == 0xFF && data[1] == 0xFE || data[0] == 0xFE && data[1] == 0xFF):
		return "", "the file is UTF-16; save it as UTF-8 (Notepad: Save As, Encoding: UTF-8)"
	}
	return string(data), ""
}

type decoder struct {
	md     *toml.MetaData
	src    *source
	path   string
	probs  Problems
	failed []toml.Key // keys whose value failed to decode, perhaps part way
}

var (
	primitiveType = reflect.TypeOf(toml.Primitive{})
	durationType  = reflect.TypeOf(Duration{})
)

// tomlName is the key a struct field is read from, "" for none.
func tomlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		return f.Name
	}
	return name
}

// mirrorOf returns a struct type with the TOML fields of t, each a
// toml.Primitive with the same name and tag.
func mirrorOf(t reflect.Type) reflect.Type {
	var fs []reflect.StructField
	for i := range t.NumField() {
		f := t.Field(i)
		if tomlName(f) == "" {
			continue
		}
		fs = append(fs, reflect.StructField{Name: f.Name, Type: primitiveType, Tag: f.Tag})
	}
	return reflect.StructOf(fs)
}

// keyNames lists the TOML keys of struct type t.
func keyNames(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		if n := tomlName(t.Field(i)); n != "" {
			names = append(names, n)
		}
	}
	return names
}

func (d *decoder) readers(prim toml.Primitive, cfg *Config) {
	list := reflect.New(reflect.SliceOf(mirrorOf(reflect.TypeOf(Reader{}))))
	if err := d.md.PrimitiveDecode(prim, list.Interface()); err != nil {
		d.failed = append(d.failed, toml.Key{"reader"})
		d.add("reader", err, "each reader is an array table: write [[reader]] (two brackets) above its keys")
		d.probs[len(d.probs)-1].Key = "[[reader]]" // so that Validate's "no reader" is not added
		return
	}
	for i := range list.Elem().Len() {
		r := DefaultReader()
		d.fields(list.Elem().Index(i), reflect.ValueOf(&r).Elem(), toml.Key{"reader"}, readerPath(i))
		cfg.Readers = append(cfg.Readers, r)
	}
}

// readerPath names the i-th (0-based) reader as the user counts: reader[1].
func readerPath(i int) string { return "reader[" + strconv.Itoa(i+1) + "]" }

// fields decodes each value present in mirror onto the same field of dst.
func (d *decoder) fields(mirror, dst reflect.Value, table toml.Key, tablePath string) {
	for i := range mirror.NumField() {
		f := mirror.Type().Field(i)
		if mirror.Field(i).IsZero() {
			continue
		}
		prim := mirror.Field(i).Interface().(toml.Primitive)
		name := tomlName(f)
		key := append(table[:len(table):len(table)], name)
		path := tablePath + "." + name
		fv := dst.FieldByName(f.Name)
		if err := d.md.PrimitiveDecode(prim, fv.Addr().Interface()); err != nil {
			var v any
			_ = d.md.PrimitiveDecode(prim, &v)
			d.failed = append(d.failed, key)
			d.add(path, err, typeMessage(name, fv.Type(), v, err))
		}
	}
}

// lineRE is compiled on first use: only an error needs it.
var lineRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^toml: line (\d+)`) })

// add records a decoding problem at path, taking the line from err when the
// scanner did not find the key (err's line is wrong for all but the last
// [[reader]], so it is not used there).
func (d *decoder) add(path string, err error, msg string) {
	p := Problem{Path: d.path, Key: displayKey(path, false), Msg: msg}
	if d.src.exact(path) || strings.Contains(path, "[") {
		p.Line, p.Col, _ = d.src.position(path)
	} else {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			p.Line = pe.Position.Line
		} else if m := lineRE().FindStringSubmatch(err.Error()); m != nil {
			p.Line, _ = strconv.Atoi(m[1])
		}
	}
	d.probs = append(d.probs, p)
}

// typeMessage explains a value of the wrong type for key name (Go type t);
// v is the value as TOML read it. Secrets are never echoed.
func typeMessage(name string, t reflect.Type, v any, err error) string {
	secret := name == "client_secret" || name == "app_id"
	got := describe(v, secret)
	switch {
	case t == durationType:
		switch v.(type) {
		case int64, float64:
			return fmt.Sprintf(`must be a quoted duration with a unit, e.g. %s = "%vs" or "%vms"; a bare number is refused`, name, v, v)
		case string:
			var pe toml.ParseError
			if errors.As(err, &pe) {
				return pe.Message
			}
		}
		return `must be a quoted duration such as "5s", not ` + got
	case t.Kind() == reflect.String:
		switch v.(type) {
		case int64, float64:
			if !secret {
				return fmt.Sprintf(`must be a quoted string: %s = "%v"`, name, v)
			}
		}
		return "must be a quoted string, not " + got
	case t.Kind() == reflect.Int:
		if s, ok := v.(string); ok {
			if _, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
				return fmt.Sprintf("must be a number without quotes: %s = %s", name, strings.TrimSpace(s))
			}
		}
		return "must be a whole number, not " + got
	case t.Kind() == reflect.Slice:
		if _, ok := v.([]any); ok {
			return `must be a list of quoted strings, e.g. ["xgh", "name"]; one of its items is not a quoted string`
		}
		return `must be a list of quoted strings, e.g. ["xgh", "name"], not ` + got
	case t.Kind() == reflect.Map:
		if _, ok := v.(map[string]any); ok {
			return `must be a table of quoted strings, e.g. { studentNo = "xgh" }; one of its values is not a quoted string`
		}
		return `must be a table of quoted strings, e.g. { studentNo = "xgh" }, not ` + got
	}
	return strings.TrimPrefix(err.Error(), "toml: ")
}

// describe names a TOML value for a message.
func describe(v any, secret bool) string {
	switch x := v.(type) {
	case string:
		if secret {
			return "a string"
		}
		if len(x) > 40 {
			x = x[:40] + "…"
		}
		return fmt.Sprintf("the string %q", x)
	case int64, float64:
		if secret {
			return "a number"
		}
		return fmt.Sprintf("the number %v", x)
	case bool:
		return fmt.Sprintf("the boolean %t", x)
	case []any, []map[string]any:
		return "a list"
	case map[string]any:
		return "a table"
	case time.Time:
		return "a date or time"
	}
	return fmt.Sprintf("a %T", v)
}

// syntaxProblem turns the parser's error into a problem with a position.
func syntaxProblem(path, text string, err error) Problem {
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		return Problem{Path: path, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
	}
	p := Problem{Path: path, Line: pe.Position.Line, Col: pe.Position.Col, Msg: pe.Message}
	if p.Line <= 0 {
		p.Line, p.Col = 0, 0
	}
	// Recount from the byte offset: columns in characters, not bytes, and
	// an unexpected end of line on the line it ends, not the next one.
	if off := pe.Position.Start; off >= 0 && off <= len(text) && (off > 0 || p.Line <= 1) {
		line := strings.Count(text[:off], "\n") + 1
		start := strings.LastIndexByte(text[:off], '\n') + 1
		if line == p.Line || line == p.Line-1 || p.Line <= 0 {
			p.Line, p.Col = line, utf8.RuneCountInString(text[start:off])+1
		}
	}
	p.Key, p.Msg = syntaxHint(lineAt(text, p.Line), p.Msg)
	return p
}

// lineAt returns line n (1-based) of text, "" when there is none.
func lineAt(text string, n int) string {
	lines := strings.Split(text, "\n")
	if n < 1 || n > len(lines) {
		return ""
	}
	return lines[n-1]
}

// keyValueRE is compiled on first use: only a syntax error needs it.
var keyValueRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^\s*([A-Za-z0-9_-]+)\s*=\s*(.*?)\s*(?:#.*)?$`)
})

// syntaxHint names the key of the line a TOML syntax error is on and adds
// the fix for the mistakes technicians make: a Windows path in double
// quotes, a bare value that should be quoted, quotes a word processor
// curled, a sub-table before its [[reader]].
func syntaxHint(line, msg string) (key, hinted string) {
	var val string
	if m := keyValueRE().FindStringSubmatch(line); m != nil {
		key, val = m[1], m[2]
	}
	switch {
	case strings.Contains(msg, "invalid escape"):
		msg += `; backslashes need single quotes: write Windows paths as 'C:\ProgramData\scanagent\data'`
	case strings.ContainsAny(line, "“”‘’＂"):
		fixed := strings.NewReplacer("“", `"`, "”", `"`, "‘", "'", "’", "'", "＂", `"`).Replace(strings.TrimSpace(line))
		if key != "" {
			fixed = key + " = " + strings.NewReplacer("“", `"`, "”", `"`, "‘", "'", "’", "'", "＂", `"`).Replace(val)
		}
		msg += fmt.Sprintf("; these are typographic quotes (a word processor or chat app curled them): type straight quotes, as in %s", fixed)
	case key != "" && val != "" && !strings.ContainsAny(val[:1], `"'[{`) && val != "true" && val != "false":
		msg += fmt.Sprintf(`; text, hex bytes and durations are written in quotes: %s = "%s"`, key, val)
	case strings.Contains(msg, "Key 'reader' was already created and cannot be used as an array"):
		msg = `[reader.map] (or another [reader.…] table) comes before the first [[reader]]: move it below the [[reader]] table it belongs to, after that reader's keys`
	}
	return key, msg
}

// displayKey names an indexed key path as the user writes it:
// "platform.app_id" → "[platform] app_id", "reader[2].baud" stays,
// a table header "plaform" → "[plaform]".
func displayKey(path string, table bool) string {
	first, rest, dotted := strings.Cut(path, ".")
	switch {
	case strings.HasSuffix(first, "]"):
		return path
	case !dotted && table:
		return "[" + first + "]"
	case !dotted:
		return first
	}
	return "[" + first + "] " + rest
}

// unknownKeys reports the keys MetaData.Undecoded lists, at the positions the
// scanner found, and keys that differ from a known one only in case (the
// decoder matches those silently; TOML says keys are case-sensitive).
func (d *decoder) unknownKeys() {
	unknown := map[string]bool{}
	var order []toml.Key
	for _, k := range d.md.Undecoded() {
		if d.underFailed(k) || unknown[k.String()] {
			continue
		}
		unknown[k.String()] = true
		order = append(order, k)
	}
	var reported []srcEntry
	found := map[string]bool{}
	for _, e := range d.src.entries {
		if covered(reported, e) {
			continue
		}
		if unknown[e.key.String()] {
			found[e.key.String()] = true
			reported = append(reported, e)
			d.unknownAt(e, unknownMessage(e.key, e.table))
			continue
		}
		if want, ok := caseMismatch(e.key); ok {
			reported = append(reported, e)
			d.unknownAt(e, "keys are case-sensitive; did you mean "+want+"?")
		}
	}
	for _, k := range order {
		if found[k.String()] {
			continue
		}
		skip := false
		for _, e := range reported {
			if isPrefix(e.key, k) {
				skip = true
			}
		}
		if skip {
			continue
		}
		reported = append(reported, srcEntry{key: k})
		name := k.String()
		if k[0] == "reader" && len(k) > 1 {
			name = "[[reader]] " + toml.Key(k[1:]).String()
		} else if len(k) > 1 {
			name = "[" + k[0] + "] " + toml.Key(k[1:]).String()
		}
		d.probs = append(d.probs, Problem{Path: d.path, Key: name, Msg: unknownMessage(k, false)})
	}
}

func (d *decoder) unknownAt(e srcEntry, msg string) {
	d.probs = append(d.probs, Problem{Path: d.path, Line: e.line, Col: e.col, Key: displayKey(e.path, e.table), Msg: msg})
}

func (d *decoder) underFailed(k toml.Key) bool {
	for _, f := range d.failed {
		if isPrefix(f, k) && len(k) > len(f) {
			return true
		}
	}
	return false
}

// covered reports whether e lies inside an entry already reported.
func covered(reported []srcEntry, e srcEntry) bool {
	for _, r := range reported {
		if r.path != "" && strings.HasPrefix(e.path, r.path+".") {
			return true
		}
	}
	return false
}

func isPrefix(prefix, k toml.Key) bool {
	if len(prefix) > len(k) {
		return false
	}
	for i := range prefix {
		if prefix[i] != k[i] {
			return false
		}
	}
	return true
}

var (
	tableNames = keyNames(reflect.TypeOf(Config{}))
	tableKeys  = map[string][]string{
		"agent":    keyNames(reflect.TypeOf(Agent{})),
		"platform": keyNames(reflect.TypeOf(Platform{})),
		"upload":   keyNames(reflect.TypeOf(Upload{})),
		"crypto":   keyNames(reflect.TypeOf(Crypto{})),
		"queue":    keyNames(reflect.TypeOf(Queue{})),
		"reader":   keyNames(reflect.TypeOf(Reader{})),
		"alerts":   keyNames(reflect.TypeOf(Alerts{})),
	}
)

// tableFor finds a table name ignoring case.
func tableFor(name string) (string, bool) {
	for _, t := range tableNames {
		if strings.EqualFold(t, name) {
			return t, true
		}
	}
	return "", false
}

// tableTitle is how a table is written: [platform] or [[reader]].
func tableTitle(t string) string {
	if t == "reader" {
		return "[[reader]]"
	}
	return "[" + t + "]"
}

// caseMismatch reports a key whose last part matches a known key only when
// case is ignored, and the right spelling.
func caseMismatch(k toml.Key) (string, bool) {
	last := k[len(k)-1]
	var known []string
	switch len(k) {
	case 1:
		known = tableNames
	case 2:
		t, ok := tableFor(k[0])
		if !ok {
			return "", false
		}
		known = tableKeys[t]
	default:
		return "", false
	}
	for _, n := range known {
		if n != last && strings.EqualFold(n, last) {
			return n, true
		}
	}
	return "", false
}

// unknownMessage explains an unknown key and suggests the key meant.
func unknownMessage(k toml.Key, table bool) string {
	what := "unknown key"
	if table {
		what = "unknown table"
	}
	name := k[len(k)-1]
	switch len(k) {
	case 1:
		if s := closest(name, tableNames); s != "" {
			return what + "; did you mean " + tableTitle(s) + "?"
		}
		if table {
			return what + "; the tables are [agent], [platform], [upload], [crypto], [queue], [[reader]] and [alerts]"
		}
		for _, t := range tableNames {
			for _, n := range tableKeys[t] {
				if n == name {
					return what + " outside any table; move it below the " + tableTitle(t) + " line"
				}
			}
		}
		for _, t := range tableNames {
			if s := closest(name, tableKeys[t]); s != "" {
				return what + "; did you mean " + s + " in " + tableTitle(t) + "?"
			}
		}
		return what + " outside any table"
	case 2:
		t, ok := tableFor(k[0])
		if !ok {
			break
		}
		if s := closest(name, tableKeys[t]); s != "" {
			return what + "; did you mean " + s + "?"
		}
		for _, other := range tableNames {
			for _, n := range tableKeys[other] {
				if n == name && other != t {
					return what + " in " + tableTitle(t) + "; " + name + " belongs in " + tableTitle(other)
				}
			}
		}
		for _, other := range tableNames {
			if s := closest(name, tableKeys[other]); s != "" && other != t {
				return what + " in " + tableTitle(t) + "; did you mean " + s + " in " + tableTitle(other) + "?"
			}
		}
		return what + " in " + tableTitle(t) + " (scanagent config example lists every key)"
	}
	return what
}

// closest returns the candidate name is most likely a misspelling of, or "".
func closest(name string, candidates []string) string {
	lname := strings.ToLower(name)
	best, bestD := "", 1<<30
	for _, c := range candidates {
		lc := strings.ToLower(c)
		dist := levenshtein(lname, lc)
		limit := 1
		switch {
		case len(lc) > 8:
			limit = 3
		case len(lc) > 4:
			limit = 2
		}
		ok := dist <= limit
		if !ok && len(lname) >= 3 && len(lc) >= 3 && (strings.Contains(lname, lc) || strings.Contains(lc, lname)) {
			ok = true
		}
		if ok && dist < bestD {
			best, bestD = c, dist
		}
	}
	return best
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// resolvePaths makes the relative paths of the file relative to the file's
// directory.
func (c *Config) resolvePaths() {
	if c.Path == "" {
		return
	}
	base := filepath.Dir(c.Path)
	if abs, err := filepath.Abs(base); err == nil {
		base = abs
	}
	resolve := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	resolve(&c.Agent.DataDir)
	resolve(&c.Agent.LogFile)
	resolve(&c.Platform.ClientSecretFile)
	resolve(&c.Platform.CAFile)
	for i := range c.Readers {
		resolve(&c.Readers[i].Roster)
	}
}

// permissionFix is the next step when the configuration cannot be read: it
// holds the client secret, so the package lets only root and the service's
// group read it.
func permissionFix() string {
	if runtime.GOOS == "windows" {
		return "the configuration is readable by Administrators and the service only: run this from an Administrator command prompt"
	}
	return "the configuration is readable by root and the scanagent group only: run this with sudo, or add your user to the group (sudo usermod -aG scanagent $USER, then log in again)"
}
