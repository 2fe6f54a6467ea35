// Package termtext makes text that came from a scanner or the platform safe
// to print on a technician's terminal and to open in a spreadsheet.
//
// A scan, a rejected frame or a platform's answer may hold control
// characters: an escape sequence would clear the screen, retitle the window
// or worse when `queue list` prints it. Everything such text passes through
// here shows its control characters (C0, DEL and C1) as escapes such as
// \x1b and \u009b instead of sending them, and bytes that are not UTF-8 as
// \xff. Line escapes everything, tab and newline too, for a table cell or a
// one-line message; Text keeps tab and newline, for free text. A backslash
// is left as it is.
//
// Table aligns columns by display width, so that a Chinese name (two
// columns a character) lines up with a Latin one. CSVCell guards a cell a
// spreadsheet would run as a formula (= + - @ and tab first) with a leading
// apostrophe. JSON escapes DEL and C1 in JSON text, which encoding/json
// writes raw (it escapes only C0).
//
// Logs need nothing from here: log/slog's TextHandler quotes any value that
// holds a control character, a space or a quote, with strconv-style escapes
// ("\x1b[2J"); TestSlogTextHandlerQuotesControls keeps that true. The
// package does not mask personal data (package redact does that before text
// is kept) and does not decide what is printed.
package termtext

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/width"
)

// Line returns s for one line of a terminal: every control character
// escaped, tab, newline and carriage return as \t, \n and \r.
func Line(s string) string { return escape(s, false) }

// Text returns s for free text: control characters escaped except tab and
// newline.
func Text(s string) string { return escape(s, true) }

func escape(s string, keepLayout bool) string {
	if clean(s, keepLayout) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case keepLayout && (r == '\t' || r == '\n'):
			b.WriteRune(r)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x80 && unicode.IsControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unicode.IsControl(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// clean reports whether s needs no escaping.
func clean(s string, keepLayout bool) bool {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || (unicode.IsControl(r) && !(keepLayout && (r == '\t' || r == '\n'))) {
			return false
		}
		i += n
	}
	return true
}

// Width is the number of terminal columns s takes: two for East Asian wide
// and full-width characters, none for combining marks and format
// characters, one for the others. s should already be escaped.
func Width(s string) int {
	n := 0
	for _, r := range s {
		n += runeWidth(r)
	}
	return n
}

func runeWidth(r rune) int {
	switch {
	case r == utf8.RuneError:
		return 1
	case unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf):
		return 0
	}
	switch width.LookupRune(r).Kind() {
	case width.EastAsianWide, width.EastAsianFullwidth:
		return 2
	}
	return 1
}

// Clip shortens s to at most n columns, ending it with "…" when cut.
func Clip(s string, n int) string {
	if Width(s) <= n {
		return s
	}
	w := 0
	for i, r := range s {
		rw := runeWidth(r)
		if w+rw > n-1 {
			return s[:i] + "…"
		}
		w += rw
	}
	return s
}

// CSVCell returns s as a CSV cell for a spreadsheet: control characters
// escaped as Text does, and a cell that starts with = + - @ or a tab
// (a formula to Excel and LibreOffice) prefixed with an apostrophe.
func CSVCell(s string) string {
	s = Text(s)
	if s != "" && strings.ContainsRune("=+-@\t", rune(s[0])) {
		return "'" + s
	}
	return s
}

// JSON returns JSON text with DEL and the C1 control characters written as
// \u escapes, which encoding/json leaves raw. The value is unchanged: raw
// characters appear in JSON text only inside strings.
func JSON(b []byte) []byte {
	i := bytes.IndexFunc(b, func(r rune) bool { return r >= 0x7f && unicode.IsControl(r) })
	if i < 0 {
		return b
	}
	out := append([]byte(nil), b[:i]...)
	for i < len(b) {
		r, n := utf8.DecodeRune(b[i:])
		if r >= 0x7f && unicode.IsControl(r) {
			out = fmt.Appendf(out, `\u%04x`, r)
		} else {
			out = append(out, b[i:i+n]...)
		}
		i += n
	}
	return out
}

// Table lays out rows written to it as tab-separated cells, one row per
// line (as text/tabwriter takes them), in columns aligned by display width
// and two spaces apart. Every cell is passed through Line; a cell must
// itself hold no tab or newline (pass it through Line first if it may).
// Nothing is written until Flush.
type Table struct {
	w    io.Writer
	buf  bytes.Buffer
	rows [][]string
}

// NewTable returns a Table that writes to w.
func NewTable(w io.Writer) *Table { return &Table{w: w} }

// Write adds text; complete lines become rows.
func (t *Table) Write(p []byte) (int, error) {
	t.buf.Write(p)
	for {
		line, err := t.buf.ReadString('\n')
		if err != nil {
			t.buf.WriteString(line) // an incomplete line: keep it
			break
		}
		t.addRow(strings.TrimSuffix(line, "\n"))
	}
	return len(p), nil
}

func (t *Table) addRow(line string) {
	cells := strings.Split(line, "\t")
	for i, c := range cells {
		cells[i] = Line(c)
	}
	t.rows = append(t.rows, cells)
}

// Flush writes the rows, with a last line that has no newline taken as a
// row, and empties the Table.
func (t *Table) Flush() error {
	if t.buf.Len() > 0 {
		t.addRow(t.buf.String())
		t.buf.Reset()
	}
	var widths []int
	for _, row := range t.rows {
		for i, c := range row[:len(row)-1] { // the last cell is not aligned
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], Width(c))
		}
	}
	var out bytes.Buffer
	for _, row := range t.rows {
		var line strings.Builder
		for i, c := range row {
			line.WriteString(c)
			if i < len(row)-1 {
				line.WriteString(strings.Repeat(" ", widths[i]-Width(c)+2))
			}
		}
		out.WriteString(strings.TrimRight(line.String(), " "))
		out.WriteByte('\n')
	}
	t.rows = nil
	_, err := t.w.Write(out.Bytes())
	return err
}
