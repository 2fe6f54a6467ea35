package reader

import (
	"bytes"
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.bug.st/serial"

	"scanagent/internal/config"
	"scanagent/internal/field"
	"scanagent/internal/redact"
)

// checkFrames checks what every framer promises: nothing longer than
// max_frame, no empty frame, no terminator inside an accepted frame.
func checkFrames(t *testing.T, fs []frame, max int, terminators string) {
	t.Helper()
	for _, f := range fs {
		if len(f.data) > max {
			t.Fatalf("frame of %d bytes, max_frame %d", len(f.data), max)
		}
		if f.reason == "" && len(f.data) == 0 {
			t.Fatal("empty frame emitted")
		}
		if f.reason == "" && bytes.ContainsAny(f.data, terminators) {
			t.Fatalf("frame %q holds a terminator", f.data)
		}
	}
}

// fuzzChunked feeds data whole, byte by byte and in chunks cut where data
// holds cut, and checks that the frames are the same.
func fuzzChunked(t *testing.T, kind string, data []byte, max uint16, cut byte, terminators string) {
	m := int(max%600) + 1
	now := time.Now()
	whole := mustFramer(t, kind, m, time.Second)
	want := whole.Feed(data, now)
	checkFrames(t, want, m, terminators)

	bytewise := mustFramer(t, kind, m, time.Second)
	var got []frame
	for i := range data {
		got = append(got, bytewise.Feed(data[i:i+1], now)...)
	}
	if show(got) != show(want) {
		t.Fatalf("byte by byte: %q, whole: %q", show(got), show(want))
	}

	chunked := mustFramer(t, kind, m, time.Second)
	got = nil
	for _, c := range bytes.SplitAfter(data, []byte{cut}) {
		got = append(got, chunked.Feed(c, now)...)
	}
	if show(got) != show(want) {
		t.Fatalf("in chunks: %q, whole: %q", show(got), show(want))
	}
}

func FuzzLineFramer(f *testing.F) {
	f.Add([]byte("2021001,张三,,1\r\n"), uint16(4096), byte(','))
	f.Add([]byte("a\rb\nc\r\n\r\n"), uint16(1), byte('\n'))
	f.Add([]byte("0123456789\n0\n"), uint16(4), byte('5'))
	f.Fuzz(func(t *testing.T, data []byte, max uint16, cut byte) {
		fuzzChunked(t, framingLine, data, max, cut, "\r\n")
	})
}

func FuzzSTXETXFramer(f *testing.F) {
	f.Add([]byte("\x020F002B5C1A62\x03"), uint16(12), byte('2'))
	f.Add([]byte("x\x02ab\x02cd\x03\x03\x02"), uint16(1), byte('\x02'))
	f.Add([]byte("\x021234567\x03\x02ok\x03"), uint16(4), byte('\x03'))
	f.Fuzz(func(t *testing.T, data []byte, max uint16, cut byte) {
		fuzzChunked(t, framingSTXETX, data, max, cut, "\x02\x03")
	})
}

func FuzzIdleFramer(f *testing.F) {
	f.Add([]byte("2021001,张三,,1"), []byte{0, 0, 0, 9, 0}, uint16(4096))
	f.Add([]byte("abcdefgh"), []byte{1, 2, 3}, uint16(3))
	f.Fuzz(func(t *testing.T, data, pauses []byte, max uint16) {
		const gap = 10 * time.Millisecond
		m := int(max%600) + 1
		// Byte i arrives pauses[i] milliseconds after byte i-1; bytes
		// arriving together are fed together to one framer and one by
		// one to another.
		t0 := time.Now()
		at := make([]time.Time, len(data))
		now := t0
		for i := range data {
			if i < len(pauses) {
				now = now.Add(time.Duration(pauses[i]%25) * time.Millisecond)
			}
			at[i] = now
		}
		one := mustFramer(t, framingIdle, m, gap)
		chunk := mustFramer(t, framingIdle, m, gap)
		var got, want []frame
		start := 0
		for i := range data {
			got = append(got, one.Expire(at[i])...)
			got = append(got, one.Feed(data[i:i+1], at[i])...)
			if i == len(data)-1 || !at[i+1].Equal(at[i]) {
				want = append(want, chunk.Feed(data[start:i+1], at[i])...)
				start = i + 1
			}
		}
		end := now.Add(gap)
		got = append(got, one.Expire(end)...)
		want = append(want, chunk.Expire(end)...)
		checkFrames(t, got, m, "")
		if show(got) != show(want) {
			t.Fatalf("one by one: %q, in chunks: %q", show(got), show(want))
		}
		if !one.Deadline().IsZero() || !chunk.Deadline().IsZero() {
			t.Fatal("deadline set after the line fell silent")
		}
		// Every byte is in exactly one frame unless an over-long frame
		// dropped its tail.
		n := 0
		dropped := false
		for _, f := range got {
			n += len(f.data)
			dropped = dropped || f.reason != ""
		}
		if !dropped && n != len(data) {
			t.Fatalf("frames hold %d bytes, %d were fed", n, len(data))
		}
	})
}

// checkDecoded checks what decodeFrame promises for any input.
func checkDecoded(t *testing.T, s scan, reason string) {
	t.Helper()
	if reason != "" {
		if s != (scan{}) {
			t.Fatalf("rejected with reason %q but returned %+v", reason, s)
		}
		// A reason is stored and logged: it must not quote the frame.
		if redact.IDNumbers(reason) != reason {
			t.Fatalf("reason %q holds a possible ID number", reason)
		}
		return
	}
	if s.Xgh == "" {
		t.Fatal("accepted a scan without xgh")
	}
	for _, v := range []string{s.Xgh, s.Name, s.IDCard, s.UserType, s.Card} {
		if !utf8.ValidString(v) || v != strings.TrimSpace(v) {
			t.Fatalf("field %q is not trimmed UTF-8", v)
		}
	}
}

func fuzzDecoder(f *testing.F, cfg config.Reader, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	d := mustDecoder(f, cfg)
	f.Fuzz(func(t *testing.T, frame []byte) {
		s, reason := decodeFrame(d, frame)
		checkDecoded(t, s, reason)
	})
}

func FuzzDelimitedDecoder(f *testing.F) {
	cfg := config.DefaultReader()
	fuzzDecoder(f, cfg, "2021001,张三,33010219900101123X,1", ",,,", "a,b", "\xff,1,2,3")
}

func FuzzJSONDecoder(f *testing.F) {
	cfg := config.DefaultReader()
	cfg.Decoder = "json"
	cfg.Map = map[string]string{"学工号": "xgh", "sfz": "idCard", "skip": "-"}
	fuzzDecoder(f, cfg, `{"学工号":2021001,"name":"张三","sfz":"33010219900101123X"}`, `{"xgh":[1]}`, `{"xgh":"1"} x`, `null`)
}

func FuzzRegexDecoder(f *testing.F) {
	cfg := config.DefaultReader()
	cfg.Decoder = "regex"
	cfg.Pattern = `^(?P<xgh>\d*);(?P<name>[^;]*)(?:;(?P<idCard>.*))?$`
	fuzzDecoder(f, cfg, "2021001;张三;33010219900101123X", ";x", "1;2;3;4")
}

func FuzzCardKey(f *testing.F) {
	formats := []string{cardHex, cardDec10, cardW26, cardAuto}
	for i, s := range []string{"0F002B5C1A", "0002841626", "043,23578", "0012AB34", "12ab34", "213,02000", "", "4294967296", "1FFFFFFFFFFFFFFFF"} {
		f.Add(s, uint8(i))
	}
	f.Fuzz(func(t *testing.T, s string, which uint8) {
		format := formats[int(which)%len(formats)]
		key, level, err := cardKey(s, format)
		if err != nil {
			if redact.IDNumbers(err.Error()) != err.Error() {
				t.Fatalf("reason %q holds a possible ID number", err)
			}
			return
		}
		if key == "" || level < levelW26 || level >= numLevels {
			t.Fatalf("cardKey(%q, %s) = %q, %v", s, format, key, level)
		}
		// Case does not matter.
		for _, v := range []string{strings.ToUpper(s), strings.ToLower(s)} {
			if k, l, err := cardKey(v, format); err != nil || k != key || l != level {
				t.Fatalf("cardKey(%q) = %q, %v, %v; cardKey(%q) = %q, %v", s, key, level, err, v, k, l)
			}
		}
		if format == cardAuto {
			return // a key may read differently (10 digits of hex are 8H10D)
		}
		// The key is its own canonical form.
		if k, _, err := cardKey(key, format); err != nil || k != key {
			t.Fatalf("cardKey(%q) = %q; cardKey of that = %q, %v", s, key, k, err)
		}
		// Leading zeros do not matter.
		if t0 := strings.TrimSpace(s); !strings.Contains(t0, ",") {
			if k, _, err := cardKey("0"+t0, format); err != nil || k != key {
				t.Fatalf("cardKey(%q) = %q; with a leading zero %q, %v", s, key, k, err)
			}
		}
	})
}

func FuzzCardDecoder(f *testing.F) {
	roster := filepath.Join(f.TempDir(), "roster.csv")
	body := "\ufeffcard,xgh,name,idCard,userType\n0012AB34,2021001,张三,33010219900101123X,1\n0F002B5C1A,2021002,李四,,2\n"
	if err := os.WriteFile(roster, []byte(body), 0o600); err != nil {
		f.Fatal(err)
	}
	cfg := config.DefaultReader()
	cfg.Decoder, cfg.Roster, cfg.Framing, cfg.CardFormat = "card", roster, "stx-etx", "auto"
	fuzzDecoder(f, cfg, "0F002B5C1A62", "0F002B5C1A63", "12ab34", "0002841626", "043,23578", " 0012ab34 ", "\xff")
}

// ackSink is the scanner's side of the port for FuzzStoredRecordsAreValid:
// it keeps the ack bytes; the reader calls nothing else on it there.
type ackSink struct {
	serial.Port
	acks []byte
}

func (p *ackSink) Write(b []byte) (int, error) {
	p.acks = append(p.acks, b...)
	return len(b), nil
}

// fakeDecrypt undoes fakeEncrypt.
func fakeDecrypt(t *testing.T, enc string) string {
	t.Helper()
	h, ok := strings.CutPrefix(enc, "enc:")
	if !ok || len(h)%2 != 0 {
		t.Fatalf("idCard %q is not fakeEncrypt's", enc)
	}
	b := make([]byte, len(h)/2)
	for i := range b {
		var v byte
		for _, c := range []byte(h[2*i : 2*i+2]) {
			v = v<<4 | byte(strings.IndexByte("0123456789ABCDEF", c))
		}
		b[i] = v ^ 0x5a
	}
	return string(b)
}

// FuzzStoredRecordsAreValid feeds any bytes through the reader's pipeline
// (framer, encoding, decoder, validation, store) under three reader
// configurations and checks that every record stored passes the record's
// rules, checked here field by field, and that every frame got one ack.
func FuzzStoredRecordsAreValid(f *testing.F) {
	plain := config.DefaultReader()
	plain.UserType = "访客"
	gbk := config.DefaultReader()
	gbk.Decoder, gbk.Encoding, gbk.IDCheck = "json", "gbk", "cn18"
	gbk.UserTypes = map[string]string{"1": "学生", "2": "教师"}
	gb18030 := config.DefaultReader()
	gb18030.Decoder, gb18030.Encoding, gb18030.Framing = "regex", "gb18030", "stx-etx"
	gb18030.Pattern = `^(?P<xgh>[^;]*);(?P<name>[^;]*);(?P<idCard>[^;]*)(?:;(?P<userType>.*))?$`
	cfgs := []config.Reader{plain, gbk, gb18030}
	for i := range cfgs {
		c := &cfgs[i]
		c.Name, c.Port, c.TermName, c.TermSn = "fuzz", "/dev/null", "东湖食堂 1 号机", "ZAFU-0001"
		c.AckOK, c.AckFail = "06", "15"
	}
	f.Add([]byte("2021001,张三,"+testID+",1\n\x1b[2J\x1b[H,,,\n2021002,\xd5\xc5,x,\n"), uint8(0))
	f.Add([]byte(`{"xgh":"2021001","name":"`+gbkName+`","idCard":"`+testID+`","userType":2}`+"\n"+`{"xgh":"1","name":"\u009b","idCard":"1","userType":1}`+"\n"), uint8(1))
	f.Add([]byte("\x022021001;"+gbkName+";"+testID+";\x03\x02a;\x7f;b\x03"), uint8(2))
	f.Add([]byte("2021001,\u00a0,"+testID+",\n2021001, 张 三 ,"+testID+",\u3000\n"), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		cfg := cfgs[int(which)%len(cfgs)]
		store := &memStore{}
		r, err := New(cfg, store, Options{Encrypt: fakeEncrypt})
		if err != nil {
			t.Fatal(err)
		}
		port := &ackSink{}
		frames := r.framer.Feed(data, time.Now())
		r.handle(context.Background(), port, frames)
		if len(port.acks) != len(frames) {
			t.Fatalf("%d acks for %d frames", len(port.acks), len(frames))
		}
		for _, rec := range store.Records() {
			id := fakeDecrypt(t, rec.IDCard)
			for _, fv := range []struct {
				name, v string
				max     int
			}{
				{"xgh", rec.Xgh, field.MaxXgh}, {"name", rec.Name, field.MaxName}, {"idCard", id, field.MaxIDCard},
				{"userType", rec.UserType, field.MaxUserType}, {"termName", rec.TermName, field.MaxTermName}, {"termSn", rec.TermSn, field.MaxTermSn},
			} {
				if err := field.Check(fv.v, fv.max); err != nil {
					t.Fatalf("stored %s %q: %v", fv.name, fv.v, err)
				}
				if fv.v != strings.TrimSpace(fv.v) {
					t.Fatalf("stored %s %q is not trimmed", fv.name, fv.v)
				}
			}
			if cfg.IDCheck == "cn18" {
				if err := field.CN18(id); err != nil {
					t.Fatalf("stored idCard %q: %v", id, err)
				}
			}
			if len(cfg.UserTypes) > 0 && !slices.Contains(slices.Collect(maps.Values(cfg.UserTypes)), rec.UserType) {
				t.Fatalf("stored userType %q is not a label of user_types", rec.UserType)
			}
		}
		for _, rj := range store.Rejections() {
			if rj.Reason == "" || redact.IDNumbers(rj.Reason) != rj.Reason {
				t.Fatalf("rejection reason %q", rj.Reason)
			}
		}
	})
}
