package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"scanagent/internal/queue"
)

// hostile is text a scanner or a platform could have put in a record
// before validation existed: it clears the screen, sets the window title,
// rings the bell, moves the cursor with C1 CSI, and starts a formula.
const hostile = "\x1b[2J\x1b[H\x1b]0;pwned\x07\u009b31m\x7f\r\n\t=HYPERLINK(\"http://x\",\"y\")"

// TestQueueOutputIsTerminalSafe runs queue list, show and export over
// records and rejections holding control characters and checks that no
// control character other than tab and newline reaches the output.
func TestQueueOutputIsTerminalSafe(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	ctx := context.Background()
	q, err := queue.Open(filepath.Join(dataDir, queueFile), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	recs := []*queue.Record{
		{Reader: "gate-1", TermName: "北门闸机", TermSn: "GATE-0001", Xgh: "2026\x1b[1A", Name: hostile, IDCard: fakeCipher,
			UserType: "学生\x1b[0m", ScanTime: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)},
		{Reader: "gate-1", TermName: "北门闸机", TermSn: "GATE-0001", Xgh: "2026B", Name: "=cmd|' /C calc'!A0", IDCard: fakeCipher,
			UserType: "+学生", ScanTime: time.Date(2026, 1, 2, 3, 4, 1, 0, time.UTC)},
		{Reader: "gate-1", TermName: "北门闸机", TermSn: "GATE-0001", Xgh: "2026C", Name: "欧阳娜娜", IDCard: fakeCipher,
			UserType: "@x", ScanTime: time.Date(2026, 1, 2, 3, 4, 2, 0, time.UTC)},
	}
	for _, r := range recs {
		if err := q.Enqueue(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Note(ctx, recs[2].ID, 1, "platform said: "+hostile, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := q.Kill(ctx, recs[1].ID, "errorFields: name "+hostile); err != nil {
		t.Fatal(err)
	}
	// Three plain rejections first, so that the hostile one's number is
	// not also a record's.
	for range 3 {
		if err := q.Reject(ctx, &queue.Rejection{Reader: "gate-1", Raw: []byte("bad"), Reason: "frame has no xgh"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Reject(ctx, &queue.Rejection{Reader: "gate-1", Raw: []byte(hostile + "\xd5\xc5"), Reason: "xgh: " + hostile}); err != nil {
		t.Fatal(err)
	}
	q.Close()
	cfgPath := queueConfig(t, dataDir, "", "/dev/null", "")

	var all bytes.Buffer
	run := func(args ...string) string {
		t.Helper()
		code, out, errs := cli(t, cfgPath, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d, stderr %q", args, code, errs)
		}
		for _, s := range []string{out, errs} {
			if i, c := unsafeChar(s); i >= 0 {
				t.Errorf("%v wrote control character %U at byte %d:\n%q", args, c, i, s)
			}
		}
		all.WriteString(out)
		return out
	}
	list := run("queue", "list")
	run("queue", "list", "--json")
	run("queue", "list", "--dead")
	run("queue", "list", "--dead", "--json")
	rejected := run("queue", "list", "--rejected")
	run("queue", "list", "--rejected", "--json")
	for _, id := range []string{"1", "2", "3"} {
		run("queue", "show", id)
		run("queue", "show", id, "--json")
	}
	// The rejected frame, addressed as the list shows it.
	lines := strings.Split(strings.TrimSpace(rejected), "\n")
	if len(lines) != 5 {
		t.Fatalf("list --rejected:\n%s", rejected)
	}
	rid := strings.Fields(lines[4])[0]
	if show := run("queue", "show", rid); !strings.Contains(show, `reason:`) || !strings.Contains(show, `\x1b[2J`) {
		t.Errorf("show %s does not show the reason with its escapes:\n%s", rid, show)
	}
	run("queue", "show", rid, "--json")
	for _, state := range [][]string{nil, {"--dead"}, {"--rejected"}} {
		run(append([]string{"queue", "export"}, state...)...)
		run(append([]string{"queue", "export", "--format", "csv"}, state...)...)
	}
	if !strings.Contains(all.String(), `\x1b[2J`) {
		t.Errorf("the escape sequence is not shown as \\x1b[2J anywhere:\n%s", all.String())
	}

	// Chinese names line up: the column after NAME starts at the same
	// display column on every line.
	ls := strings.Split(strings.TrimSpace(list), "\n")
	if len(ls) != 3 {
		t.Fatalf("list:\n%s", list)
	}
	want := displayCol(ls[0], strings.Index(ls[0], "USER TYPE"))
	for _, tc := range []struct{ line, value string }{{ls[1], `学生\x1b[0m`}, {ls[2], "@x"}} {
		i := strings.Index(tc.line, tc.value)
		if i < 0 || displayCol(tc.line, i) != want {
			t.Errorf("userType %q not under USER TYPE (display column %d):\n%s", tc.value, want, list)
		}
	}

	// CSV: formulas guarded, and a BOM with --bom.
	code, out, _ := cli(t, cfgPath, "queue", "export", "--format", "csv", "--bom")
	if code != 0 || !strings.HasPrefix(out, "\ufeffid,") {
		t.Fatalf("export --bom: exit %d, starts %q", code, out[:min(len(out), 10)])
	}
	code, out, _ = cli(t, cfgPath, "queue", "export", "--format", "csv", "--bom=false")
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if code != 0 || err != nil || len(rows) != 3 {
		t.Fatalf("export csv: exit %d, %v, %d rows:\n%s", code, err, len(rows), out)
	}
	if name, ut := rows[2][5], rows[2][7]; name != "欧阳娜娜" || ut != "'@x" {
		t.Errorf("csv row %q: want name 欧阳娜娜 and userType '@x", rows[2])
	}
	for _, row := range rows[1:] {
		for _, cell := range row {
			if cell != "" && strings.ContainsRune("=+-@\t", rune(cell[0])) {
				t.Errorf("csv cell %q starts a formula", cell)
			}
		}
	}
	code, out, _ = cli(t, cfgPath, "queue", "export", "--format", "csv", "--dead")
	if code != 0 || !strings.Contains(out, `'=cmd|' /C calc'!A0`) || !strings.Contains(out, "'+学生") {
		t.Errorf("export --dead csv: the formulas are not guarded:\n%s", out)
	}
}

// unsafeChar returns the first control character other than tab and
// newline in s (C0, DEL, C1, or a byte that is not UTF-8), or -1.
func unsafeChar(s string) (int, rune) {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || (r < 0x20 && r != '\t' && r != '\n') || (r >= 0x7f && r <= 0x9f) {
			return i, r
		}
		i += n
	}
	return -1, 0
}

// displayCol is the terminal column at byte offset i of line: wide
// characters count two.
func displayCol(line string, i int) int {
	col := 0
	for _, r := range line[:i] {
		col++
		if r >= 0x1100 && (r <= 0x115f || (r >= 0x2e80 && r <= 0xa4cf) || (r >= 0xac00 && r <= 0xd7a3) || (r >= 0xf900 && r <= 0xfaff) || (r >= 0xff00 && r <= 0xff60)) {
			col++
		}
	}
	return col
}
