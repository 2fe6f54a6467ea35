package reader

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"scanagent/internal/config"
)

// Field names a decoder can fill, as written in fields, map and pattern.
const (
	fieldXgh      = "xgh"
	fieldName     = "name"
	fieldIDCard   = "idCard"
	fieldUserType = "userType"
	fieldCard     = "card"
)

var fieldNames = []string{fieldXgh, fieldName, fieldIDCard, fieldUserType, fieldCard}

// scan is what a decoder found in a frame. IDCard is still plaintext here: it
// must go through Options.Encrypt before anything is stored, and a scan is
// never logged.
type scan struct {
	Xgh, Name, IDCard, UserType, Card string
}

func (s *scan) set(field, value string) {
	value = strings.TrimSpace(value)
	switch field {
	case fieldXgh:
		s.Xgh = value
	case fieldName:
		s.Name = value
	case fieldIDCard:
		s.IDCard = value
	case fieldUserType:
		s.UserType = value
	case fieldCard:
		s.Card = value
	}
}

// A decoder turns a frame into a scan. The frame is UTF-8 unless the
// scanner sent something else: a decoder must not fail on invalid bytes
// (decodeFrame then rejects the frame, naming the field that holds them).
// Its errors become the stored reason of a rejection, so they never quote
// the frame's content.
type decoder interface {
	Decode(frame []byte) (scan, error)
}

// newDecoder builds the decoder cfg names. log and now are for the card
// decoder's roster reloads; nil means discard and time.Now.
func newDecoder(cfg config.Reader, log *slog.Logger, now func() time.Time) (decoder, error) {
	switch cfg.Decoder {
	case "delimited":
		return newDelimited(cfg.Delimiter, cfg.Fields)
	case "json":
		return newJSONDecoder(cfg.Map)
	case "regex":
		return newRegexDecoder(cfg.Pattern)
	case "card":
		return newCardDecoder(cfg.Roster, cfg.CardFormat, cfg.Framing == framingSTXETX, log, now)
	default:
		return nil, fmt.Errorf("decoder = %q: want \"delimited\", \"json\", \"regex\" or \"card\"", cfg.Decoder)
	}
}

// decodeFrame decodes a frame, checks that it is UTF-8 and that it names a
// person. A non-empty reason means the frame is rejected; a frame that is
// not UTF-8 is decoded first so that the reason can name the field that
// holds the bad bytes. The record's field rules are applied after it
// (Reader.check).
func decodeFrame(d decoder, data []byte) (scan, string) {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	s, err := d.Decode(data)
	if !utf8.Valid(data) {
		if err != nil {
			s = scan{}
		}
		return scan{}, notUTF8(s)
	}
	if err != nil {
		return scan{}, err.Error()
	}
	if s.Xgh == "" {
		return scan{}, "frame has no xgh"
	}
	return s, ""
}

func isField(name string) bool { return slices.Contains(fieldNames, name) }

func skipField(name string) bool { return name == "" || name == "-" }

// delimited: columns split by a delimiter, named in order by fields.
type delimited struct {
	delim  string
	fields []string
}

func newDelimited(delim string, fields []string) (*delimited, error) {
	if delim == "" {
		return nil, errors.New(`delimiter is empty: set it to the column separator, e.g. ","`)
	}
	if err := checkFields("fields", fields); err != nil {
		return nil, err
	}
	return &delimited{delim: delim, fields: slices.Clone(fields)}, nil
}

// checkFields reports names that are not fields, duplicates, and a missing
// xgh. "" and "-" are allowed (a skipped column or key).
func checkFields(key string, names []string) error {
	seen := map[string]bool{}
	for _, n := range names {
		if skipField(n) {
			continue
		}
		if !isField(n) {
			return fmt.Errorf("%s: unknown field %q: want one of %s (or \"-\" to skip)", key, n, strings.Join(fieldNames, ", "))
		}
		if seen[n] {
			return fmt.Errorf("%s: field %q named twice", key, n)
		}
		seen[n] = true
	}
	if !seen[fieldXgh] {
		return fmt.Errorf("%s: no %q: every scan needs the person's number", key, fieldXgh)
	}
	return nil
}

func (d *delimited) Decode(frame []byte) (scan, error) {
	cols := strings.Split(string(frame), d.delim)
	if len(cols) != len(d.fields) {
		return scan{}, fmt.Errorf("delimited: got %d columns, want %d", len(cols), len(d.fields))
	}
	var s scan
	for i, f := range d.fields {
		if !skipField(f) {
			s.set(f, cols[i])
		}
	}
	return s, nil
}

// jsonDecoder: one JSON object; keys are field names or renamed by rename
// (payload key → field). Other keys are ignored.
type jsonDecoder struct {
	rename map[string]string
}

func newJSONDecoder(m map[string]string) (*jsonDecoder, error) {
	targets := map[string]string{}
	for k, f := range m {
		if skipField(f) {
			continue
		}
		if !isField(f) {
			return nil, fmt.Errorf("map: key %q renamed to unknown field %q: want one of %s", k, f, strings.Join(fieldNames, ", "))
		}
		if prev, ok := targets[f]; ok {
			a, b := min(prev, k), max(prev, k)
			return nil, fmt.Errorf("map: keys %q and %q both renamed to %q", a, b, f)
		}
		targets[f] = k
	}
	return &jsonDecoder{rename: m}, nil
}

func (d *jsonDecoder) Decode(frame []byte) (scan, error) {
	dec := json.NewDecoder(bytes.NewReader(frame))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return scan{}, errors.New("json: not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return scan{}, errors.New("json: data after the object")
	}
	var s scan
	// Keys named like a field first, renamed keys second, so that a renamed
	// key wins whatever the order in the payload.
	assign := func(field string, v any) error {
		switch v := v.(type) {
		case string:
			s.set(field, v)
		case json.Number:
			s.set(field, v.String())
		case nil:
		default:
			return fmt.Errorf("json: key for field %s is not a string or number", field)
		}
		return nil
	}
	for k, v := range obj {
		if _, renamed := d.rename[k]; renamed || !isField(k) {
			continue
		}
		if err := assign(k, v); err != nil {
			return scan{}, err
		}
	}
	for k, f := range d.rename {
		v, ok := obj[k]
		if !ok || skipField(f) {
			continue
		}
		if err := assign(f, v); err != nil {
			return scan{}, err
		}
	}
	return s, nil
}

// regexDecoder: an RE2 pattern whose named groups are fields.
type regexDecoder struct {
	re     *regexp.Regexp
	groups []string
}

func newRegexDecoder(pattern string) (*regexDecoder, error) {
	if pattern == "" {
		return nil, errors.New(`pattern is empty: decoder "regex" needs an RE2 pattern with named groups, e.g. "^(?P<xgh>\\d+),(?P<name>[^,]*)$"`)
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("pattern: %w", err)
	}
	var named []string
	for _, n := range re.SubexpNames() {
		if n != "" {
			named = append(named, n)
		}
	}
	if err := checkFields("pattern", named); err != nil {
		return nil, err
	}
	return &regexDecoder{re: re, groups: re.SubexpNames()}, nil
}

func (d *regexDecoder) Decode(frame []byte) (scan, error) {
	m := d.re.FindSubmatch(frame)
	if m == nil {
		return scan{}, errors.New("regex: frame does not match pattern")
	}
	var s scan
	for i, n := range d.groups {
		if n != "" {
			s.set(n, string(m[i]))
		}
	}
	return s, nil
}
