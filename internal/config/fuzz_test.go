package config

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse feeds arbitrary files to Parse. Seeds are in testdata/fuzz/FuzzParse.
// It checks that Parse never panics, returns either a Config or Problems,
// and that every position it reports lies inside the file.
func FuzzParse(f *testing.F) {
	f.Add(Example)
	f.Fuzz(func(t *testing.T, data []byte) {
		lines := strings.Count(string(data), "\n") + 1
		scanSource(string(data)) // the scanner alone, on text the parser may refuse

		cfg, err := Parse(data, "fuzz.toml")
		if err == nil {
			if cfg == nil {
				t.Fatal("got nil Config and nil error")
			}
			cfg.Warnings()
			return
		}
		if cfg != nil {
			t.Fatalf("got a Config with error %v", err)
		}
		var ps Problems
		if !errors.As(err, &ps) || len(ps) == 0 {
			t.Fatalf("got error %T %v, want Problems", err, err)
		}
		for _, p := range ps {
			if p.Line < 0 || p.Line > lines+1 || p.Col < 0 || (p.Line == 0 && p.Col != 0) {
				t.Errorf("problem %q: position outside a %d-line file", p, lines)
			}
			if p.Msg == "" {
				t.Errorf("problem %q: no message", p)
			}
			if utf8.Valid(data) && !utf8.ValidString(p.String()) {
				t.Errorf("problem %q: invalid UTF-8 from valid input", p)
			}
		}
	})
}
