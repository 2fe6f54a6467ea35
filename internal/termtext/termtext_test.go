package termtext

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestLineAndText(t *testing.T) {
	for _, tc := range []struct{ in, line, text string }{
		{"张三", "张三", "张三"},
		{"\x1b[2J\x1b[H", `\x1b[2J\x1b[H`, `\x1b[2J\x1b[H`},
		{"a\tb\nc\r\n", `a\tb\nc\r\n`, "a\tb\nc\\r\n"},
		{"del\x7f nul\x00 bel\x07", `del\x7f nul\x00 bel\x07`, `del\x7f nul\x00 bel\x07`},
		{"csi\u009b2J nel\u0085", `csi\u009b2J nel\u0085`, `csi\u009b2J nel\u0085`},
		{"gbk \xd5\xc5", `gbk \xd5\xc5`, `gbk \xd5\xc5`},
		{`C:\data`, `C:\data`, `C:\data`},
	} {
		if got := Line(tc.in); got != tc.line {
			t.Errorf("Line(%q) = %q, want %q", tc.in, got, tc.line)
		}
		if got := Text(tc.in); got != tc.text {
			t.Errorf("Text(%q) = %q, want %q", tc.in, got, tc.text)
		}
	}
}

// FuzzEscape: whatever the input, Line leaves no control character and no
// invalid UTF-8, and Text only tab and newline.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"\x1b]0;title\x07", "张\u009b三", "\xff\xfe", "a\tb\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for name, out := range map[string]string{"Line": Line(s), "Text": Text(s)} {
			if !clean(out, name == "Text") {
				t.Fatalf("%s(%q) = %q still holds a control character or a bad byte", name, s, out)
			}
		}
		if clean(s, false) && Line(s) != s {
			t.Fatalf("Line changed clean text %q", s)
		}
	})
}

func TestWidthAndClip(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"abc", 3}, {"张三", 4}, {"ＡＢ", 4}, {"e\u0301", 1}, {"東湖食堂 1 号机", 15}, {"", 0},
	} {
		if got := Width(tc.in); got != tc.want {
			t.Errorf("Width(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"张三李四", 8, "张三李四"}, {"张三李四", 7, "张三李…"}, {"张三李四", 6, "张三…"}, {"abcdef", 4, "abc…"},
	} {
		if got := Clip(tc.in, tc.n); got != tc.want || Width(got) > tc.n {
			t.Errorf("Clip(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestTableAlignsByDisplayWidth(t *testing.T) {
	var b bytes.Buffer
	tb := NewTable(&b)
	tb.Write([]byte("ID\tNAME\tTYPE\n1\t张三\t学生\n22\tAnn\t"))
	tb.Write([]byte("staff\n3\t\x1b[2J\tx\n"))
	if err := tb.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "ID  NAME     TYPE\n" +
		"1   张三     学生\n" +
		"22  Ann      staff\n" +
		"3   \\x1b[2J  x\n"
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestCSVCell(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"张三", "张三"},
		{`=HYPERLINK("http://x","y")`, `'=HYPERLINK("http://x","y")`},
		{"+1", "'+1"}, {"-1", "'-1"}, {"@SUM(A1)", "'@SUM(A1)"}, {"\t=1", "'\t=1"},
		{"a=b", "a=b"}, {"\x1b[2J", `\x1b[2J`},
	} {
		if got := CSVCell(tc.in); got != tc.want {
			t.Errorf("CSVCell(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestJSONEscapesDELAndC1(t *testing.T) {
	v := map[string]string{"name": "张\u009b2J三\x7f\x1b"}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out := JSON(b)
	if !clean(string(out), false) {
		t.Fatalf("JSON(%q) = %q still holds a control character", b, out)
	}
	var back map[string]string
	if err := json.Unmarshal(out, &back); err != nil || back["name"] != v["name"] {
		t.Fatalf("JSON changed the value: %q, %v", back["name"], err)
	}
}

// TestSlogTextHandlerQuotesControls: text logs are terminal-safe without
// this package, because slog quotes a value holding a control character.
func TestSlogTextHandlerQuotesControls(t *testing.T) {
	var b bytes.Buffer
	log := slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	log.Warn("frame rejected", "reason", "xgh: \x1b[2J", "frame", "a\u009bb\x7f\r\n")
	got := b.String()
	if !clean(strings.TrimSuffix(got, "\n"), false) {
		t.Fatalf("slog wrote a control character: %q", got)
	}
	if !strings.Contains(got, `reason="xgh: \x1b[2J"`) {
		t.Fatalf("got %q, want the escape shown as \\x1b", got)
	}
}
