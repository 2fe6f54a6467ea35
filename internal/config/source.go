package config

import (
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// BurntSushi/toml keeps key positions to itself, and for arrays of tables it
// keeps only the last one ("reader.baud" for every [[reader]]). The small
// scanner in this file walks the source once more to find where each key is
// written, so that problems point at the right line of the right [[reader]].
// It runs only on text the TOML parser has accepted, and is best-effort: a
// key it misses gets a problem without a position, never a wrong one.

// srcEntry is one key or table header in the file.
type srcEntry struct {
	key   toml.Key // as MetaData names it: no array indices
	path  string   // with 1-based array indices: "reader[2].baud"
	table bool     // a [table] or [[array]] header
	line  int
	col   int
}

// source is the position index of one configuration file.
type source struct {
	entries []srcEntry
	byPath  map[string]int // path → index of its first entry
}

// position returns where path is written or, failing that, where the table
// holding it starts. ok is false when neither is known.
func (s *source) position(path string) (line, col int, ok bool) {
	if s == nil {
		return 0, 0, false
	}
	for {
		if i, found := s.byPath[path]; found {
			e := s.entries[i]
			return e.line, e.col, true
		}
		j := strings.LastIndexByte(path, '.')
		if j < 0 {
			return 0, 0, false
		}
		path = path[:j]
	}
}

// exact reports whether path itself (not its table) is written in the file.
func (s *source) exact(path string) bool {
	if s == nil {
		return false
	}
	_, ok := s.byPath[path]
	return ok
}

// scanSource indexes the keys of a TOML document. It never fails.
func scanSource(text string) *source {
	l := &lexer{
		s:      text,
		arrays: map[string]int{},
		src:    &source{byPath: map[string]int{}},
	}
	l.lineStarts = append(l.lineStarts, 0)
	for i := 0; i < len(text); i++ {
		if text[i] == '\n' {
			l.lineStarts = append(l.lineStarts, i+1)
		}
	}
	l.run()
	return l.src
}

type lexer struct {
	s          string
	i          int
	lineStarts []int
	src        *source

	table     []string       // current table, no indices
	tablePath string         // current table, with indices
	arrays    map[string]int // array-of-tables key → tables seen so far
}

func (l *lexer) run() {
	for l.i < len(l.s) {
		start := l.i
		l.skipBlank(true)
		if l.i >= len(l.s) {
			return
		}
		switch l.s[l.i] {
		case '#':
		case '[':
			l.header()
		default:
			l.keyValue(l.table, l.tablePath, true)
		}
		l.skipLine()
		if l.i == start {
			l.i++
		}
	}
}

// lineCol turns a byte offset into a 1-based line and character column.
func (l *lexer) lineCol(off int) (int, int) {
	n := sort.Search(len(l.lineStarts), func(i int) bool { return l.lineStarts[i] > off })
	if n == 0 {
		return 1, 1
	}
	start := l.lineStarts[n-1]
	if off > len(l.s) {
		off = len(l.s)
	}
	return n, utf8.RuneCountInString(l.s[start:off]) + 1
}

func (l *lexer) record(key []string, path string, table bool, off int) {
	line, col := l.lineCol(off)
	e := srcEntry{key: append(toml.Key(nil), key...), path: path, table: table, line: line, col: col}
	if _, dup := l.src.byPath[path]; !dup {
		l.src.byPath[path] = len(l.src.entries)
	}
	l.src.entries = append(l.src.entries, e)
}

func (l *lexer) header() {
	start := l.i
	array := strings.HasPrefix(l.s[l.i:], "[[")
	if array {
		l.i += 2
	} else {
		l.i++
	}
	parts := l.keyParts()
	if len(parts) == 0 {
		return
	}
	var b strings.Builder
	for k := range parts {
		n := l.arrays[toml.Key(parts[:k+1]).String()]
		if array && k == len(parts)-1 {
			n++
			l.arrays[toml.Key(parts).String()] = n
		}
		if k > 0 {
			b.WriteByte('.')
		}
		b.WriteString(parts[k])
		if n > 0 {
			b.WriteString("[" + strconv.Itoa(n) + "]")
		}
	}
	l.table = parts
	l.tablePath = b.String()
	l.record(parts, l.tablePath, true, start)
}

// keyValue reads `key = value` under the table (prefix, path).
func (l *lexer) keyValue(prefix []string, path string, rec bool) {
	start := l.i
	parts := l.keyParts()
	if len(parts) == 0 {
		return
	}
	l.skipBlank(false)
	if l.i >= len(l.s) || l.s[l.i] != '=' {
		return
	}
	l.i++
	key := append(append([]string(nil), prefix...), parts...)
	p := strings.Join(parts, ".")
	if path != "" {
		p = path + "." + p
	}
	if rec {
		l.record(key, p, false, start)
	}
	l.skipBlank(false)
	l.value(key, p, rec)
}

// keyParts reads a dotted key: bare, "basic" or 'literal' parts.
func (l *lexer) keyParts() []string {
	var parts []string
	for {
		l.skipBlank(false)
		if l.i >= len(l.s) {
			return parts
		}
		switch c := l.s[l.i]; {
		case c == '"':
			j := l.i + 1
			for j < len(l.s) && l.s[j] != '"' && l.s[j] != '\n' {
				if l.s[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(l.s) {
				j = len(l.s) - 1
			}
			raw := l.s[l.i : j+1]
			part, err := strconv.Unquote(raw)
			if err != nil {
				part = strings.Trim(raw, `"`)
			}
			parts = append(parts, part)
			l.i = j + 1
		case c == '\'':
			j := strings.IndexAny(l.s[l.i+1:], "'\n")
			if j < 0 {
				j = len(l.s) - l.i - 1
			}
			parts = append(parts, l.s[l.i+1:l.i+1+j])
			l.i += j + 2
		case isBare(c):
			j := l.i
			for j < len(l.s) && isBare(l.s[j]) {
				j++
			}
			parts = append(parts, l.s[l.i:j])
			l.i = j
		default:
			return parts
		}
		l.i = min(l.i, len(l.s))
		l.skipBlank(false)
		if l.i < len(l.s) && l.s[l.i] == '.' {
			l.i++
			continue
		}
		return parts
	}
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// value skips one value; the keys of inline tables are recorded under key.
func (l *lexer) value(key []string, path string, rec bool) {
	if l.i >= len(l.s) {
		return
	}
	switch l.s[l.i] {
	case '"', '\'':
		l.str()
	case '[':
		l.i++
		for l.i < len(l.s) {
			l.skipBlank(true)
			if l.i >= len(l.s) {
				return
			}
			switch l.s[l.i] {
			case ']':
				l.i++
				return
			case ',':
				l.i++
			case '#':
				l.skipLine()
			default:
				start := l.i
				l.value(nil, "", false)
				if l.i == start {
					l.i++
				}
			}
		}
	case '{':
		l.i++
		for l.i < len(l.s) {
			l.skipBlank(true)
			if l.i >= len(l.s) {
				return
			}
			switch l.s[l.i] {
			case '}':
				l.i++
				return
			case ',':
				l.i++
			case '#':
				l.skipLine()
			default:
				start := l.i
				l.keyValue(key, path, rec)
				if l.i == start {
					l.i++
				}
			}
		}
	default:
		for l.i < len(l.s) && !strings.ContainsRune(",]}#\n", rune(l.s[l.i])) {
			l.i++
		}
	}
}

// str skips a basic, literal or multi-line string.
func (l *lexer) str() {
	defer func() { l.i = min(l.i, len(l.s)) }()
	q := l.s[l.i]
	escapes := q == '"'
	if strings.HasPrefix(l.s[l.i:], strings.Repeat(string(q), 3)) {
		l.i += 3
		for l.i < len(l.s) {
			if escapes && l.s[l.i] == '\\' {
				l.i += 2
				continue
			}
			if strings.HasPrefix(l.s[l.i:], strings.Repeat(string(q), 3)) {
				l.i += 3
				for l.i < len(l.s) && l.s[l.i] == q { // """a"""" ends with a quote
					l.i++
				}
				return
			}
			l.i++
		}
		return
	}
	l.i++
	for l.i < len(l.s) && l.s[l.i] != '\n' {
		c := l.s[l.i]
		if escapes && c == '\\' {
			l.i += 2
			continue
		}
		l.i++
		if c == q {
			return
		}
	}
}

// skipBlank skips spaces and tabs, and newlines too when nl is set.
func (l *lexer) skipBlank(nl bool) {
	for l.i < len(l.s) {
		switch l.s[l.i] {
		case ' ', '\t', '\r':
		case '\n':
			if !nl {
				return
			}
		default:
			return
		}
		l.i++
	}
}

// skipLine moves past the end of the current line.
func (l *lexer) skipLine() {
	if l.i >= len(l.s) {
		return
	}
	j := strings.IndexByte(l.s[l.i:], '\n')
	if j < 0 {
		l.i = len(l.s)
		return
	}
	l.i += j + 1
}
