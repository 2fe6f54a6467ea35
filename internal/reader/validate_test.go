package reader

import (
	"bytes"
	"strings"
	"testing"

	"scanagent/internal/config"
	"scanagent/internal/field"
)

// gbkName is 张三 as a GBK scanner sends it.
const gbkName = "\xd5\xc5\xc8\xfd"

// TestValidationOverPTY: every frame that would be refused by the platform
// is answered with ack_fail and kept as a rejection whose reason names the
// field and the rule; nothing of it is stored as a record.
func TestValidationOverPTY(t *testing.T) {
	tests := []struct {
		name       string
		adjust     func(*config.Reader)
		send       string
		wantReason string // the whole reason
	}{
		{"empty columns", nil, ",,,\n", "frame has no xgh"},
		{"escape sequences", nil, "\x1b[2J\x1b[H,,,\n",
			"xgh: holds control character U+001B; name: is empty; idCard: is empty"},
		{"escape in the name", nil, "2021001,\x1b]0;pwned\x07张三," + testID + ",1\n", "name: holds control character U+001B"},
		{"c1 in the name", nil, "2021001,张\u009b2J三," + testID + ",1\n", "name: holds control character U+009B"},
		{"del in xgh", nil, "2021\x7f001,张三," + testID + ",1\n", "xgh: holds control character U+007F"},
		{"invalid utf-8", nil, "2021001,\xff\xfe," + testID + ",1\n", `name: not valid UTF-8 (a scanner that sends GBK needs encoding = "gbk")`},
		{"gbk without encoding", nil, "2021001," + gbkName + "," + testID + ",1\n", `name: not valid UTF-8 (a scanner that sends GBK needs encoding = "gbk")`},
		{"not gbk either", func(c *config.Reader) { c.Encoding = "gbk" }, "2021001,\xd5," + testID + ",1\n", `frame is not valid GBK (encoding = "gbk")`},
		{"bad check digit", func(c *config.Reader) { c.IDCheck = "cn18" }, "2021001,张三,110105194912310021,1\n",
			`idCard: check character does not match the 17 digits (ISO 7064 MOD 11-2, id_check = "cn18")`},
		{"passport under cn18", func(c *config.Reader) { c.IDCheck = "cn18" }, "2021001,张三,E12345678,1\n", `idCard: is not 18 characters (id_check = "cn18")`},
		{"unknown user type", func(c *config.Reader) { c.UserTypes = map[string]string{"1": "学生"} }, "2021001,张三," + testID + ",7\n", "userType: code not in user_types"},
		{"name too long", nil, "2021001," + strings.Repeat("张", field.MaxName+1) + "," + testID + ",1\n", "name: is 65 characters long; at most 64"},
		{"no user type, no user_type", func(c *config.Reader) { c.UserType = "" }, "2021001,张三," + testID + ",\n",
			`userType: is empty (set the reader's user_type for a scanner that sends none)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := newScanner(t)
			cfg := testConfig(sc.path)
			if tt.adjust != nil {
				tt.adjust(&cfg)
			}
			h := startReader(t, cfg, Options{})
			h.waitConnected(t)
			sc.write(t, tt.send)
			if got := sc.readAck(t, 2); !bytes.Equal(got, []byte{0x15, 0x0d}) {
				t.Fatalf("ack = % x, want ack_fail 15 0d", got)
			}
			rjs := h.store.Rejections()
			if len(rjs) != 1 || rjs[0].Reason != tt.wantReason {
				t.Fatalf("rejections = %+v, want one with reason %q", rjs, tt.wantReason)
			}
			if bytes.Contains(rjs[0].Raw, []byte(testID[:6])) {
				t.Errorf("rejection %q keeps the ID number", rjs[0].Raw)
			}
			if recs := h.store.Records(); len(recs) != 0 {
				t.Errorf("records = %+v, want none", recs)
			}
			if st := h.r.Stats(); st.Rejected != 1 || st.Stored != 0 {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

// TestEncodingsAndUserTypesOverPTY: a GBK or GB18030 scanner's frame is
// stored with the right name once encoding says so, and a userType code
// is stored as its label.
func TestEncodingsAndUserTypesOverPTY(t *testing.T) {
	for _, enc := range []string{"gbk", "gb18030"} {
		t.Run(enc, func(t *testing.T) {
			sc := newScanner(t)
			cfg := testConfig(sc.path)
			cfg.Encoding = enc
			cfg.IDCheck = "cn18"
			cfg.UserTypes = map[string]string{"1": "学生", "2": "教师"}
			h := startReader(t, cfg, Options{})
			h.waitConnected(t)
			// GBK 张三, a lower-case check character, code 2.
			sc.write(t, "2021001,"+gbkName+","+strings.ToLower(testID)+",2\n")
			if got := sc.readAck(t, 1); got[0] != 0x07 {
				t.Fatalf("ack = % x, want ack_ok 07", got)
			}
			recs := h.store.Records()
			wantID, _ := fakeEncrypt(testID)
			if len(recs) != 1 || recs[0].Name != "张三" || recs[0].UserType != "教师" || recs[0].IDCard != wantID {
				t.Fatalf("records = %+v, want 张三, 教师", recs)
			}
		})
	}
}

// TestMonitorGivesTheSameVerdict: Monitor's events carry the reason Run
// would store.
func TestMonitorGivesTheSameVerdict(t *testing.T) {
	cfg := testConfig("/dev/null")
	cfg.UserTypes = map[string]string{"1": "学生"}
	r, err := build(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, frame := range []string{"\x1b[2J\x1b[H,,,", "2021001,张三," + testID + ",1", "2021001,张三," + testID + ",3", "2021001," + gbkName + ",,"} {
		ev := r.inspect(frameOf(frame), r.now(), 0)
		_, reason := r.decode([]byte(frame))
		if ev.Reason != reason {
			t.Errorf("%q: monitor says %q, the reader %q", frame, ev.Reason, reason)
		}
		if reason == "" && ev.Fields.UserType != "学生" {
			t.Errorf("%q: monitor shows userType %q, want the label", frame, ev.Fields.UserType)
		}
	}
}

func frameOf(s string) frame { return frame{data: []byte(s)} }
