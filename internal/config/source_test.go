package config

import (
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

const trickySource = `# comment = 1
"quoted key" = 1
s = """
fake = 1
"""
a.b = 2
arr = [
  1, # comment ]
  2,
]
[platform]
  timeout = "5s"  # c
t = { x = 1, y = { z = 2 } }
[[reader]]
name = 'a'
[reader.map]
xgh = "a"
[[reader]]
lit = '''
x = 1'''
[reader.map]
"id Card" = "b"
`

func TestScanSource(t *testing.T) {
	want := map[string][2]int{
		"quoted key":            {2, 1},
		"s":                     {3, 1},
		"a.b":                   {6, 1},
		"arr":                   {7, 1},
		"platform":              {11, 1},
		"platform.timeout":      {12, 3},
		"platform.t":            {13, 1},
		"platform.t.x":          {13, 7},
		"platform.t.y":          {13, 14},
		"platform.t.y.z":        {13, 20},
		"reader[1]":             {14, 1},
		"reader[1].name":        {15, 1},
		"reader[1].map":         {16, 1},
		"reader[1].map.xgh":     {17, 1},
		"reader[2]":             {18, 1},
		"reader[2].lit":         {19, 1},
		"reader[2].map":         {21, 1},
		"reader[2].map.id Card": {22, 1},
	}
	for name, text := range map[string]string{
		"LF":   trickySource,
		"CRLF": strings.ReplaceAll(trickySource, "\n", "\r\n"),
	} {
		t.Run(name, func(t *testing.T) {
			var v any
			if _, err := toml.Decode(text, &v); err != nil {
				t.Fatalf("test input is not valid TOML: %v", err)
			}
			src := scanSource(text)
			got := map[string][2]int{}
			for _, e := range src.entries {
				got[e.path] = [2]int{e.line, e.col}
			}
			for path, pos := range want {
				if got[path] != pos {
					t.Errorf("%s: got line:col %v, want %v", path, got[path], pos)
				}
			}
			for path := range got {
				if _, ok := want[path]; !ok {
					t.Errorf("got unexpected key %q", path)
				}
			}
		})
	}
}

func TestSourcePositionFallsBackToTable(t *testing.T) {
	src := scanSource("[agent]\nlog_level = 'x'\n[[reader]]\nname = 'a'\n")
	tests := []struct {
		path       string
		line, col  int
		wantExists bool
	}{
		{"agent.log_level", 2, 1, true},
		{"agent.data_dir", 1, 1, true},
		{"reader[1].baud", 3, 1, true},
		{"reader[2].baud", 0, 0, false},
		{"platform.app_id", 0, 0, false},
	}
	for _, tt := range tests {
		line, col, ok := src.position(tt.path)
		if line != tt.line || col != tt.col || ok != tt.wantExists {
			t.Errorf("position(%q): got %d:%d %v, want %d:%d %v", tt.path, line, col, ok, tt.line, tt.col, tt.wantExists)
		}
	}
	var nilSrc *source
	if _, _, ok := nilSrc.position("agent"); ok {
		t.Errorf("nil source: got a position, want none")
	}
}
