package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// head and reader1 make a valid file; their lines are counted in the tests.
const (
	head = `[platform]
client_id = "c"
client_secret = "s"
app_id = "01"
` // lines 1-4
	reader1 = `[[reader]]
name = "r1"
port = "/dev/ttyUSB0"
term_name = "t"
term_sn = "sn"
` // 5 lines
	reader2 = `[[reader]]
name = "r2"
port = "/dev/ttyUSB1"
term_name = "t2"
term_sn = "sn2"
` // 5 lines
)

// mustProblems parses text and returns the problems, failing if there are none.
func mustProblems(tb testing.TB, text string) Problems {
	tb.Helper()
	cfg, err := Parse([]byte(text), "c.toml")
	if err == nil {
		tb.Fatalf("Parse: got no error, want problems")
	}
	if cfg != nil {
		tb.Errorf("Parse: got a Config with an error, want nil")
	}
	var ps Problems
	if !errors.As(err, &ps) {
		tb.Fatalf("Parse: got error %T %v, want Problems", err, err)
	}
	return ps
}

func mustParse(tb testing.TB, text string) *Config {
	tb.Helper()
	cfg, err := Parse([]byte(text), "c.toml")
	if err != nil {
		tb.Fatalf("Parse: %v", err)
	}
	return cfg
}

func problemLines(ps Problems) []string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return s
}

func TestParseValid(t *testing.T) {
	t.Setenv(EnvSecret, "")
	cfg := mustParse(t, head+reader1+`[[reader]]
name = "r2"
port = "/dev/ttyS2"
term_name = "t2"
term_sn = "sn2"
baud = 115200
fields = ["-", "xgh"]
[reader.map]
studentNo = "xgh"
`)
	if cfg.Path != "c.toml" {
		t.Errorf("Path: got %q, want %q", cfg.Path, "c.toml")
	}
	if got, want := cfg.Platform.Timeout.Duration, 15*time.Second; got != want {
		t.Errorf("timeout: got %v, want default %v", got, want)
	}
	if len(cfg.Readers) != 2 {
		t.Fatalf("readers: got %d, want 2", len(cfg.Readers))
	}
	want1 := DefaultReader()
	want1.Name, want1.Port, want1.TermName, want1.TermSn = "r1", "/dev/ttyUSB0", "t", "sn"
	if !reflect.DeepEqual(cfg.Readers[0], want1) {
		t.Errorf("reader 1:\ngot  %+v\nwant %+v", cfg.Readers[0], want1)
	}
	want2 := DefaultReader()
	want2.Name, want2.Port, want2.TermName, want2.TermSn = "r2", "/dev/ttyS2", "t2", "sn2"
	want2.Baud, want2.Fields, want2.Map = 115200, []string{"-", "xgh"}, map[string]string{"studentNo": "xgh"}
	if !reflect.DeepEqual(cfg.Readers[1], want2) {
		t.Errorf("reader 2:\ngot  %+v\nwant %+v", cfg.Readers[1], want2)
	}
	if w := cfg.Warnings(); len(w) != 0 {
		t.Errorf("warnings: got %q, want none (not a real file)", w)
	}
}

func TestParseUnknownKeys(t *testing.T) {
	t.Setenv(EnvSecret, "")
	tests := []struct {
		name string
		text string
		want []string
	}{
		{"misspelt platform key", head + "tiemout = \"5s\"\n" + reader1,
			[]string{`c.toml:5:1: [platform] tiemout: unknown key; did you mean timeout?`}},
		{"misspelt reader key, indented", head + reader1 + "  bauds = 9600\n",
			[]string{`c.toml:10:3: reader[1].bauds: unknown key; did you mean baud?`}},
		{"second reader", head + reader1 + reader2 + "baud_rate = 9600\n",
			[]string{`c.toml:15:1: reader[2].baud_rate: unknown key; did you mean baud?`}},
		{"same typo in two readers", head + reader1 + "bauds = 1\n" + reader2 + "bauds = 2\n",
			[]string{
				`c.toml:10:1: reader[1].bauds: unknown key; did you mean baud?`,
				`c.toml:16:1: reader[2].bauds: unknown key; did you mean baud?`,
			}},
		{"wrong case", head + reader1 + "Baud = 9600\n",
			[]string{`c.toml:10:1: reader[1].Baud: keys are case-sensitive; did you mean baud?`}},
		{"wrong case table", head + reader1 + "[Upload]\nconcurrency = 2\n",
			[]string{`c.toml:10:1: [Upload]: keys are case-sensitive; did you mean upload?`}},
		{"misspelt table, its keys not listed again", head + reader1 + "[plaform]\nx = 1\ny = 2\n",
			[]string{`c.toml:10:1: [plaform]: unknown table; did you mean [platform]?`}},
		{"unknown table", head + reader1 + "[serial]\nx = 1\n",
			[]string{`c.toml:10:1: [serial]: unknown table; the tables are [agent], [platform], [upload], [crypto], [queue], [[reader]] and [alerts]`}},
		{"key in the wrong table", head + reader1 + "[upload]\ntimeout = \"1s\"\n",
			[]string{`c.toml:11:1: [upload] timeout: unknown key in [upload]; timeout belongs in [platform]`}},
		{"reader key in a table", head + reader1 + "[agent]\nbaud = 1\n",
			[]string{`c.toml:11:1: [agent] baud: unknown key in [agent]; baud belongs in [[reader]]`}},
		{"key before any table", "timeout = \"5s\"\n" + head + reader1,
			[]string{`c.toml:1:1: timeout: unknown key outside any table; move it below the [platform] line`}},
		{"misspelt key before any table", "tiemout = \"5s\"\n" + head + reader1,
			[]string{`c.toml:1:1: tiemout: unknown key; did you mean timeout in [platform]?`}},
		{"inline table", "agent = { log_level = \"info\", log_levle = \"debug\" }\n" + head + reader1,
			[]string{`c.toml:1:31: [agent] log_levle: unknown key; did you mean log_level?`}},
		{"alerts key misspelt", head + reader1 + "[alerts]\nreader_dwon = \"5m\"\n",
			[]string{`c.toml:11:1: [alerts] reader_dwon: unknown key; did you mean reader_down?`}},
		{"alerts SMS without a number, at its key", head + reader1 + "[alerts]\nto = [\"20121032\"]\nmessage_type = \"1\"\nmessage_to = \"\"\n",
			[]string{`c.toml:13:1: [alerts] message_to: is empty; message_type "1" (SMS) needs the mobile number to text, e.g. "13800000000"`}},
		{"nothing close", head + reader1 + "colour = \"red\"\n",
			[]string{`c.toml:10:1: reader[1].colour: unknown key in [[reader]] (scanagent config example lists every key)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := problemLines(mustProblems(t, tt.text))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(tt.want, "\n\t"))
			}
		})
	}
}

func TestParseSyntaxError(t *testing.T) {
	tests := []struct {
		name      string
		text      string
		line, col int
		msg       string
	}{
		{"unclosed table name", "[agent\n", 1, 7, "to end table name"},
		{"missing value", head + "params =\n", 5, 9, "expected value"},
		{"Windows path in double quotes", "[agent]\ndata_dir = \"C:\\data\"\n", 2, 0, "write Windows paths as 'C:"},
		{"column counts characters", "[[reader]]\nterm_name = \"东湖\" x\n", 2, 0, "expected a top-level item to end"},
		{"UTF-16", "\xff\xfe[\x00a\x00", 0, 0, "save it as UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := mustProblems(t, tt.text)
			if len(ps) != 1 {
				t.Fatalf("got %d problems %q, want 1", len(ps), problemLines(ps))
			}
			p := ps[0]
			if p.Path != "c.toml" || p.Line != tt.line || (tt.col != 0 && p.Col != tt.col) {
				t.Errorf("got %s:%d:%d, want c.toml:%d:%d", p.Path, p.Line, p.Col, tt.line, tt.col)
			}
			if !strings.Contains(p.Msg, tt.msg) {
				t.Errorf("got message %q, want it to contain %q", p.Msg, tt.msg)
			}
		})
	}
	// The column of the stray x is counted in characters: 东湖 are 2, not 6.
	ps := mustProblems(t, "[[reader]]\nterm_name = \"东湖\" x\n")
	if ps[0].Col > 18 {
		t.Errorf("got column %d, want at most 18 (characters, not bytes)", ps[0].Col)
	}
}

func TestParseBOM(t *testing.T) {
	t.Setenv(EnvSecret, "")
	cfg := mustParse(t, "\xEF\xBB\xBF"+head+reader1)
	if cfg.Platform.ClientID != "c" {
		t.Errorf("client_id: got %q, want %q", cfg.Platform.ClientID, "c")
	}
}

func TestParseWrongTypes(t *testing.T) {
	t.Setenv(EnvSecret, "")
	tests := []struct {
		name string
		text string
		want string
	}{
		{"bare duration", head + "timeout = 5\n" + reader1,
			`c.toml:5:1: [platform] timeout: must be a quoted duration with a unit, e.g. timeout = "5s" or "5ms"; a bare number is refused`},
		{"bare duration in reader", head + reader1 + "idle_gap = 50\n",
			`c.toml:10:1: reader[1].idle_gap: must be a quoted duration with a unit, e.g. idle_gap = "50s" or "50ms"; a bare number is refused`},
		{"duration without unit", head + "timeout = \"5\"\n" + reader1,
			`c.toml:5:1: [platform] timeout: invalid duration "5": write a number with a unit, e.g. "5s", "2m", "50ms"`},
		{"quoted number", head + reader1 + "baud = \"9600\"\n",
			`c.toml:10:1: reader[1].baud: must be a number without quotes: baud = 9600`},
		{"unquoted string", head + reader1 + "stop_bits = 1\n",
			`c.toml:10:1: reader[1].stop_bits: must be a quoted string: stop_bits = "1"`},
		{"string for a list", head + reader1 + "fields = \"xgh\"\n",
			`c.toml:10:1: reader[1].fields: must be a list of quoted strings, e.g. ["xgh", "name"], not the string "xgh"`},
		{"list with a number", head + reader1 + "fields = [\"xgh\", 2]\n",
			`c.toml:10:1: reader[1].fields: must be a list of quoted strings, e.g. ["xgh", "name"]; one of its items is not a quoted string`},
		{"boolean", "[agent]\nlog_level = true\n" + head + reader1,
			`c.toml:2:1: [agent] log_level: must be a quoted string, not the boolean true`},
		{"table that is a value", "agent = 5\n" + head + reader1,
			`c.toml:1:1: agent: must be a table: write [agent] on a line of its own, with its keys below it`},
		{"one bracket for reader", head + "[reader]\nname = \"a\"\n",
			`c.toml:5:1: [[reader]]: each reader is an array table: write [[reader]] (two brackets) above its keys`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := problemLines(mustProblems(t, tt.text))
			if len(got) != 1 || got[0] != tt.want {
				t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), tt.want)
			}
		})
	}
}

func TestParseNeverEchoesSecrets(t *testing.T) {
	t.Setenv(EnvSecret, "")
	text := "[platform]\nclient_id = \"c\"\nclient_secret = 918273645\napp_id = 5647382910\n" + reader1
	err := Problems(mustProblems(t, text))
	for _, secret := range []string{"918273645", "5647382910"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("got %q, want no secret in it", err)
		}
	}
	if !strings.Contains(err.Error(), "[platform] client_secret: must be a quoted string, not a number") {
		t.Errorf("got %q, want a type problem for client_secret", err)
	}
}

func TestParseListsEveryProblem(t *testing.T) {
	t.Setenv(EnvSecret, "")
	text := `[agent]
log_level = "loud"
tiemout = "5s"
[platform]
client_id = "c"
client_secret = "s"
app_id = "01234567890123456"
timeout = 5
[[reader]]
name = "r1"
port = "/dev/ttyUSB0"
term_name = "t"
term_sn = "sn"
bauds = 9600
parity = "n"
[[reader]]
name = "r1"
port = "/dev/ttyUSB1"
term_name = "t"
[reader.map]
student = "no"
`
	want := []string{
		`c.toml:2:1: [agent] log_level: is "loud"; use "debug", "info", "warn" or "error"`,
		`c.toml:3:1: [agent] tiemout: unknown key in [agent]; did you mean timeout in [platform]?`,
		`c.toml:7:1: [platform] app_id: is 17 bytes long; at most 16 (it is the AES-128 key)`,
		`c.toml:8:1: [platform] timeout: must be a quoted duration with a unit, e.g. timeout = "5s" or "5ms"; a bare number is refused`,
		`c.toml:14:1: reader[1].bauds: unknown key; did you mean baud?`,
		`c.toml:15:1: reader[1].parity: is "n"; use "none", "odd", "even", "mark" or "space"`,
		`c.toml:16:1: reader[2].term_sn: is empty; set the terminal serial number the platform knows this reader by`,
		`c.toml:17:1: reader[2].name: "r1" is also the name of reader[1]; names must be unique`,
		`c.toml:21:1: reader[2].map.student: is "no", not a field; use "xgh", "name", "idCard", "userType" or "card", or "-" to ignore this JSON key`,
	}
	got := problemLines(mustProblems(t, text))
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

func TestParseValidationPositionInInlineTable(t *testing.T) {
	t.Setenv(EnvSecret, "")
	got := problemLines(mustProblems(t, head+reader1+`map = { a = "xgh", bad = "b" }`+"\n"))
	want := []string{`c.toml:10:20: reader[1].map.bad: is "b", not a field; use "xgh", "name", "idCard", "userType" or "card", or "-" to ignore this JSON key`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestRelativePaths(t *testing.T) {
	dir := t.TempDir()
	text := `[agent]
data_dir = "data"
log_file = 'logs/agent.log'
[platform]
client_secret_file = "secret"
ca_file = "/etc/ssl/ca.pem"
[[reader]]
roster = "roster.csv"
[[reader]]
`
	conf := filepath.Join(dir, "conf", "c.toml")
	cfg, _ := parse([]byte(text), conf)
	base := filepath.Join(dir, "conf")
	tests := []struct{ name, got, want string }{
		{"data_dir", cfg.Agent.DataDir, filepath.Join(base, "data")},
		{"log_file", cfg.Agent.LogFile, filepath.Join(base, "logs", "agent.log")},
		{"client_secret_file", cfg.Platform.ClientSecretFile, filepath.Join(base, "secret")},
		{"ca_file (absolute, kept)", cfg.Platform.CAFile, filepath.FromSlash("/etc/ssl/ca.pem")},
		{"roster", cfg.Readers[0].Roster, filepath.Join(base, "roster.csv")},
		{"roster unset", cfg.Readers[1].Roster, ""},
	}
	if filepath.IsAbs("/etc/ssl/ca.pem") == false { // Windows: a path without a drive is relative
		tests = tests[:3]
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}

	// With no path, nothing is resolved.
	cfg, _ = parse([]byte(text), "")
	if cfg.Agent.DataDir != "data" {
		t.Errorf("data_dir without a path: got %q, want %q", cfg.Agent.DataDir, "data")
	}
}

func TestLoadRelativeToConfigNotWorkingDir(t *testing.T) {
	t.Setenv(EnvSecret, "")
	dir := t.TempDir()
	conf := filepath.Join(dir, "conf")
	mustWrite(t, conf, "secret", "  s3cret\n")
	mustWrite(t, conf, "roster.csv", "card,xgh,name,idCard,userType\n")
	mustWrite(t, conf, "c.toml", `[platform]
client_id = "c"
client_secret_file = "secret"
app_id = "01"
[[reader]]
name = "r1"
port = "/dev/ttyUSB0"
term_name = "t"
term_sn = "sn"
decoder = "card"
roster = "roster.csv"
`)
	t.Chdir(dir) // a relative --config, as typed by a technician
	cfg, err := Load(filepath.Join("conf", "c.toml"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := filepath.Join(conf, "roster.csv")
	if got := cfg.Readers[0].Roster; !sameFile(got, want) {
		t.Errorf("roster: got %q, want %q", got, want)
	}
	if !filepath.IsAbs(cfg.Readers[0].Roster) {
		t.Errorf("roster: got %q, want an absolute path", cfg.Readers[0].Roster)
	}
	if s, err := cfg.ClientSecret(); s != "s3cret" || err != nil {
		t.Errorf("ClientSecret: got %q, %v, want %q", s, err, "s3cret")
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.toml")
	_, err := Load(path)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v, want fs.ErrNotExist", err)
	}
	if err != nil && !strings.Contains(err.Error(), "scanagent config example") {
		t.Errorf("got %q, want a hint to create the file", err)
	}
}

// mustWrite writes a file under dir (creating dir) and returns its path.
func mustWrite(tb testing.TB, dir, name, content string) string {
	tb.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

func sameFile(a, b string) bool {
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(sa, sb)
}

// TestParseRecordFields: the new reader keys parse, and a value that would
// break a record field is reported where it is written.
func TestParseRecordFields(t *testing.T) {
	t.Setenv(EnvSecret, "")
	cfg := mustParse(t, head+reader1+`encoding = "gbk"
id_check = "cn18"
user_types = { "1" = "学生", "2" = "教师" }
`)
	r := cfg.Readers[0]
	if r.Encoding != "gbk" || r.IDCheck != "cn18" || !reflect.DeepEqual(r.UserTypes, map[string]string{"1": "学生", "2": "教师"}) {
		t.Fatalf("got encoding %q, id_check %q, user_types %v", r.Encoding, r.IDCheck, r.UserTypes)
	}
	got := problemLines(mustProblems(t, head+strings.Replace(reader1, `term_name = "t"`, `term_name = "t\u001b[2J"`, 1)+
		`user_types = { "1" = "学生", "2" = "" }`+"\n"+`encoding = "utf8"`+"\n"))
	want := []string{
		`c.toml:8:1: reader[1].term_name: holds control character U+001B; remove it: term_name = "t[2J"`,
		`c.toml:10:28: reader[1].user_types.2: is empty; map the code to the label the platform expects, e.g. "学生"`,
		`c.toml:11:1: reader[1].encoding: is "utf8"; use "utf-8", "gbk" or "gb18030"`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// lineRE is compiled on first use, so a test must compile it: it takes the
// line from toml's decoding errors ("toml: line N (last key ...): ...").
func TestLineREReadsTomlErrorLine(t *testing.T) {
	m := lineRE().FindStringSubmatch(`toml: line 12 (last key "agent.log_max_size"): 99999999999 is out of range for int`)
	if m == nil || m[1] != "12" {
		t.Fatalf("lineRE on a toml error = %q, want line 12", m)
	}
	if m := lineRE().FindStringSubmatch(`toml: (last key "agent"): incompatible types`); m != nil {
		t.Fatalf("lineRE on an error without a line = %q, want no match", m)
	}
}
