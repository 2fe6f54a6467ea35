package config

import (
	"sort"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a configuration file: a syntax error, an
// unknown key, a value of the wrong type or out of range, a missing file or
// secret.
type Problem struct {
	Path string // the configuration file; "" when not read from a file
	Line int    // 1-based; 0 when unknown
	Col  int    // 1-based, in characters; 0 when unknown
	Key  string // as the user writes it: "[platform] app_id", "reader[1].baud"; may be ""
	Msg  string
}

// String formats the problem as PATH:LINE:COL: key: message, leaving out the
// parts that are unknown.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.Path)
	if p.Line > 0 {
		if b.Len() > 0 {
			b.WriteByte(':')
		}
		b.WriteString(strconv.Itoa(p.Line))
		if p.Col > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(p.Col))
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error implements error.
func (p Problem) Error() string { return p.String() }

// MessageAndFix splits Msg into what is wrong and what to do, where the
// message follows the house form "what is wrong; what to do" (`is "x"; use
// "a" or "b"`). fix is "" when the message names no fix apart.
func (p Problem) MessageAndFix() (msg, fix string) {
	msg, fix, _ = strings.Cut(p.Msg, "; ")
	return msg, fix
}

// Problems is every problem found in a configuration; as an error it prints
// one problem per line.
type Problems []Problem

// Error implements error.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// sortByPosition orders problems as they appear in the file; problems with
// no position come last, in the order they were found.
func (ps Problems) sortByPosition() {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if (a.Line == 0) != (b.Line == 0) {
			return a.Line != 0
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}
