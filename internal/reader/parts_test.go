package reader

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.bug.st/serial"
	"go.bug.st/serial/enumerator"

	"scanagent/internal/config"
)

// show renders frames as "data" or "!data(reason)" for comparison.
func show(fs []frame) string {
	var parts []string
	for _, f := range fs {
		if f.reason != "" {
			parts = append(parts, fmt.Sprintf("!%s(%s)", f.data, f.reason))
		} else {
			parts = append(parts, string(f.data))
		}
	}
	return strings.Join(parts, "|")
}

func mustFramer(tb testing.TB, kind string, max int, gap time.Duration) framer {
	tb.Helper()
	f, err := newFramer(kind, max, gap)
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

// feedAll feeds chunks at one instant and collects the frames.
func feedAll(f framer, chunks ...string) []frame {
	var out []frame
	now := time.Now()
	for _, c := range chunks {
		out = append(out, f.Feed([]byte(c), now)...)
	}
	return out
}

func TestLineFramer(t *testing.T) {
	const long = "frame longer than max_frame (5 bytes)"
	tests := []struct {
		name   string
		chunks []string
		want   string
	}{
		{"cr lf crlf", []string{"a\rb\nc\r\n"}, "a|b|c"},
		{"empty lines", []string{"\r\n\r\n\n\rx\n\n"}, "x"},
		{"pieces", []string{"ab", "c", "\r", "\nde", "f\n"}, "abc|def"},
		{"no terminator yet", []string{"abc"}, ""},
		{"exactly max", []string{"12345\n"}, "12345"},
		{"too long then resync", []string{"1234567890\nok\n"}, "!12345(" + long + ")|ok"},
		{"too long across pieces", []string{"123", "456", "789\r", "\nok\r"}, "!12345(" + long + ")|ok"},
		{"too long at terminator", []string{"123456", "\n", "ok\n"}, "!12345(" + long + ")|ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustFramer(t, framingLine, 5, 0)
			if got := show(feedAll(f, tt.chunks...)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLineFramerReset(t *testing.T) {
	f := mustFramer(t, framingLine, 5, 0)
	feedAll(f, "half")
	f.Reset()
	if got := show(feedAll(f, "x\n")); got != "x" {
		t.Errorf("after Reset got %q, want %q", got, "x")
	}
}

func TestSTXETXFramer(t *testing.T) {
	const long = "frame longer than max_frame (5 bytes)"
	tests := []struct {
		name   string
		chunks []string
		want   string
	}{
		{"one", []string{"\x02abc\x03"}, "abc"},
		{"noise outside", []string{"zz\x02abc\x03\r\nyy\x02de\x03"}, "abc|de"},
		{"pieces", []string{"\x02a", "b", "c\x03\x02", "d\x03"}, "abc|d"},
		{"empty", []string{"\x02\x03"}, ""},
		{"etx alone", []string{"ab\x03"}, ""},
		{"stx restarts", []string{"\x02ab\x02cd\x03"}, "!ab(frame not terminated by ETX)|cd"},
		{"too long then resync at etx", []string{"\x021234567\x03\x02ok\x03"}, "!12345(" + long + ")|ok"},
		{"too long then resync at stx", []string{"\x021234567\x02ok\x03"}, "!12345(" + long + ")|ok"},
		{"rdm6300", []string{"\x02", "0F00", "2B5C1A", "62\x03"}, "0F002B5C1A62"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			max := 5
			if tt.name == "rdm6300" {
				max = 12
			}
			f := mustFramer(t, framingSTXETX, max, 0)
			if got := show(feedAll(f, tt.chunks...)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestIdleFramer(t *testing.T) {
	const gap = 50 * time.Millisecond
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

	f := mustFramer(t, framingIdle, 5, gap)
	if !f.Deadline().IsZero() {
		t.Fatal("deadline set with nothing buffered")
	}
	var got []frame
	got = append(got, f.Feed([]byte("ab"), at(0))...)
	got = append(got, f.Feed([]byte("c"), at(30))...) // within the gap: same frame
	if d := f.Deadline(); !d.Equal(at(80)) {
		t.Errorf("deadline = %v after start, want 80ms", d.Sub(t0))
	}
	got = append(got, f.Expire(at(79))...)
	got = append(got, f.Expire(at(80))...)
	got = append(got, f.Feed([]byte("de"), at(200))...)
	got = append(got, f.Feed([]byte("fg"), at(300))...) // gap passed before these bytes: "de" ends first
	got = append(got, f.Feed([]byte("12345678"), at(310))...)
	got = append(got, f.Feed([]byte("9"), at(320))...) // still the over-long frame: dropped
	got = append(got, f.Expire(at(400))...)
	got = append(got, f.Feed([]byte("ok"), at(500))...)
	got = append(got, f.Expire(at(600))...)
	want := "abc|de|!fg123(frame longer than max_frame (5 bytes))|ok"
	if s := show(got); s != want {
		t.Errorf("got %q, want %q", s, want)
	}
	if !f.Deadline().IsZero() {
		t.Error("deadline still set after the last frame")
	}
}

func TestNewFramerErrors(t *testing.T) {
	for _, tt := range []struct {
		kind string
		max  int
		gap  time.Duration
	}{
		{"line", 0, 0},
		{"idle", 10, 0},
		{"lines", 10, 0},
	} {
		if _, err := newFramer(tt.kind, tt.max, tt.gap); err == nil {
			t.Errorf("newFramer(%q, %d, %v): no error", tt.kind, tt.max, tt.gap)
		}
	}
}

func mustDecoder(tb testing.TB, cfg config.Reader) decoder {
	tb.Helper()
	d, err := newDecoder(cfg, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

func TestDecoders(t *testing.T) {
	delimited := config.DefaultReader()
	tsv := config.DefaultReader()
	tsv.Delimiter = "\t"
	tsv.Fields = []string{"-", "xgh", "", "name"}
	jsonCfg := config.DefaultReader()
	jsonCfg.Decoder = "json"
	jsonCfg.Map = map[string]string{"学工号": "xgh", "XM": "name", "ignored": "-"}
	regexCfg := config.DefaultReader()
	regexCfg.Decoder = "regex"
	regexCfg.Pattern = `^ID:(?P<xgh>\d+)(?:;N:(?P<name>[^;]*))?(?:;T:(?P<userType>\d))?$`

	tests := []struct {
		name       string
		cfg        config.Reader
		frame      string
		want       scan
		wantReason string
	}{
		{"delimited", delimited, " 2021001 , 张三 ,110,1 ", scan{Xgh: "2021001", Name: "张三", IDCard: "110", UserType: "1"}, ""},
		{"delimited empty columns", delimited, "2021001,,,", scan{Xgh: "2021001"}, ""},
		{"delimited too few", delimited, "2021001,张三,110", scan{}, "delimited: got 3 columns, want 4"},
		{"delimited too many", delimited, "a,b,c,d,e", scan{}, "delimited: got 5 columns, want 4"},
		{"delimited no xgh", delimited, " ,张三,110,1", scan{}, "frame has no xgh"},
		{"delimited skip columns", tsv, "x\t2021001\ty\t张三", scan{Xgh: "2021001", Name: "张三"}, ""},
		{"not utf-8", delimited, "2021001,\xc0\xaf,,", scan{}, `name: not valid UTF-8 (a scanner that sends GBK needs encoding = "gbk")`},
		{"gbk", delimited, "2021001,\xd5\xc5\xc8\xfd,,", scan{}, `name: not valid UTF-8 (a scanner that sends GBK needs encoding = "gbk")`},
		{"not utf-8 nor columns", delimited, "\xd5\xc5", scan{}, `frame is not valid UTF-8 (a scanner that sends GBK needs encoding = "gbk")`},
		{"bom", delimited, "\ufeff2021001,a,,", scan{Xgh: "2021001", Name: "a"}, ""},

		{"json renamed", jsonCfg, `{"学工号":"2021001","XM":"张三","idCard":"110","userType":2}`, scan{Xgh: "2021001", Name: "张三", IDCard: "110", UserType: "2"}, ""},
		{"json number", jsonCfg, `{"学工号": 2021001.0}`, scan{Xgh: "2021001.0"}, ""},
		{"json renamed wins", jsonCfg, `{"xgh":"a","学工号":"b"}`, scan{Xgh: "b"}, ""},
		{"json renamed key not read as field", jsonCfg, `{"XM":"x","name":"y","xgh":"1"}`, scan{Xgh: "1", Name: "x"}, ""},
		{"json null and extras", jsonCfg, `{"xgh":"1","name":null,"ignored":{"a":1},"other":[1]}`, scan{Xgh: "1"}, ""},
		{"json not object", jsonCfg, `["2021001"]`, scan{}, "json: not a JSON object"},
		{"json null", jsonCfg, `null`, scan{}, "json: not a JSON object"},
		{"json broken", jsonCfg, `{"xgh":`, scan{}, "json: not a JSON object"},
		{"json trailing", jsonCfg, `{"xgh":"1"} {}`, scan{}, "json: data after the object"},
		{"json bad type", jsonCfg, `{"xgh":["1"]}`, scan{}, "json: key for field xgh is not a string or number"},
		{"json bool", jsonCfg, `{"xgh":"1","userType":true}`, scan{}, "json: key for field userType is not a string or number"},
		{"json no xgh", jsonCfg, `{"name":"张三"}`, scan{}, "frame has no xgh"},
		{"json not utf-8", jsonCfg, "{\"xgh\":\"1\",\"name\":\"\xd5\xc5\"}", scan{}, `name: not valid UTF-8 (a scanner that sends GBK needs encoding = "gbk")`},

		{"regex", regexCfg, "ID:2021001;N:张三;T:1", scan{Xgh: "2021001", Name: "张三", UserType: "1"}, ""},
		{"regex optional group", regexCfg, "ID:2021001", scan{Xgh: "2021001"}, ""},
		{"regex no match", regexCfg, "XX:1", scan{}, "regex: frame does not match pattern"},
		{"regex not utf-8", regexCfg, "ID:2021001;N:\xd5\xc5\xff", scan{}, `name: not valid UTF-8 (a scanner that sends GBK needs encoding = "gbk")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := decodeFrame(mustDecoder(t, tt.cfg), []byte(tt.frame))
			if got != tt.want || reason != tt.wantReason {
				t.Errorf("got %+v, %q; want %+v, %q", got, reason, tt.want, tt.wantReason)
			}
		})
	}
}

func TestParseHexBytes(t *testing.T) {
	tests := []struct {
		in   string
		want []byte
		ok   bool
	}{
		{"", nil, true},
		{"07", []byte{7}, true},
		{"06 0d", []byte{6, 0x0d}, true},
		{"060D", []byte{6, 0x0d}, true},
		{"0x06,0x0d", []byte{6, 0x0d}, true},
		{"7", nil, false},
		{"zz", nil, false},
	}
	for _, tt := range tests {
		got, err := parseHexBytes("ack_ok", tt.in)
		if (err == nil) != tt.ok || !bytes.Equal(got, tt.want) {
			t.Errorf("parseHexBytes(%q) = % x, %v; want % x, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestSerialMode(t *testing.T) {
	cfg := config.DefaultReader()
	cfg.Baud, cfg.DataBits, cfg.Parity, cfg.StopBits = 115200, 7, "even", "1.5"
	m, err := serialMode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := serial.Mode{BaudRate: 115200, DataBits: 7, Parity: serial.EvenParity, StopBits: serial.OnePointFiveStopBits}
	if *m != want {
		t.Errorf("mode = %+v, want %+v", *m, want)
	}
	for _, p := range []string{"none", "odd", "even", "mark", "space"} {
		cfg.Parity = p
		if _, err := serialMode(cfg); err != nil {
			t.Errorf("parity %q: %v", p, err)
		}
	}
	cfg.Parity = "none"
	for _, bad := range []func(c *config.Reader){
		func(c *config.Reader) { c.Baud = 0 },
		func(c *config.Reader) { c.DataBits = 9 },
		func(c *config.Reader) { c.Parity = "weird" },
		func(c *config.Reader) { c.StopBits = "3" },
	} {
		c := cfg
		bad(&c)
		if _, err := serialMode(c); err == nil {
			t.Errorf("serialMode(%+v): no error", c)
		}
	}
}

func TestUSBPort(t *testing.T) {
	ports := []*enumerator.PortDetails{
		{Name: "/dev/ttyS0"},
		{Name: "/dev/ttyUSB0", IsUSB: true, VID: "1A86", PID: "7523", SerialNumber: "A"},
		{Name: "/dev/ttyUSB1", IsUSB: true, VID: "1a86", PID: "7523", SerialNumber: "B"},
	}
	tests := []struct {
		port, want string
	}{
		{"usb:1a86:7523", "/dev/ttyUSB0"},
		{"USB:1A86:7523:B", "/dev/ttyUSB1"},
		{"usb:1a86:7523:C", ""},
		{"usb:0403:6001", ""},
	}
	for _, tt := range tests {
		spec, ok, err := parseUSBSpec(tt.port)
		if !ok || err != nil {
			t.Fatalf("parseUSBSpec(%q) = %v, %v", tt.port, ok, err)
		}
		got, err := spec.resolve(ports)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("resolve(%q) = %q, %v; want %q", tt.port, got, err, tt.want)
		}
	}
	for _, bad := range []string{"usb:", "usb:1a86", "usb:1a8:7523", "usb:xxxx:7523"} {
		if _, ok, err := parseUSBSpec(bad); !ok || err == nil {
			t.Errorf("parseUSBSpec(%q) = %v, %v; want an error", bad, ok, err)
		}
	}
	if _, ok, _ := parseUSBSpec("/dev/ttyUSB0"); ok {
		t.Error("a device path parsed as usb:")
	}
}

func TestUSBPortResolvedAtConnect(t *testing.T) {
	sc := newScanner(t)
	cfg := testConfig("usb:1a86:7523")
	var lists int
	h := startReaderWith(t, cfg, Options{}, func(r *Reader) {
		r.listPorts = func() ([]*enumerator.PortDetails, error) {
			lists++
			if lists < 3 { // not plugged in yet
				return nil, nil
			}
			return []*enumerator.PortDetails{{Name: sc.path, IsUSB: true, VID: "1A86", PID: "7523"}}, nil
		}
	})
	h.waitConnected(t)
	if !strings.Contains(h.logs.String(), "no USB serial device present with: usb:1a86:7523") {
		t.Errorf("missing device not logged:\n%s", h.logs)
	}
	if !strings.Contains(h.logs.String(), "port="+sc.path) {
		t.Errorf("resolved path not logged:\n%s", h.logs)
	}
}

func TestNewValidates(t *testing.T) {
	store := &memStore{}
	opts := Options{Encrypt: fakeEncrypt}
	tests := []struct {
		name string
		edit func(c *config.Reader, o *Options)
		want string
	}{
		{"no name", func(c *config.Reader, o *Options) { c.Name = "" }, "name is empty"},
		{"no port", func(c *config.Reader, o *Options) { c.Port = "" }, "port is empty"},
		{"no encrypt", func(c *config.Reader, o *Options) { o.Encrypt = nil }, "no Encrypt"},
		{"framing", func(c *config.Reader, o *Options) { c.Framing = "lines" }, `framing = "lines"`},
		{"max_frame", func(c *config.Reader, o *Options) { c.MaxFrame = 0 }, "max_frame = 0"},
		{"decoder", func(c *config.Reader, o *Options) { c.Decoder = "xml" }, `decoder = "xml"`},
		{"card no roster", func(c *config.Reader, o *Options) { c.Decoder = "card" }, "roster is empty"},
		{"card format", func(c *config.Reader, o *Options) { c.Decoder, c.Roster, c.CardFormat = "card", "x.csv", "8h10d" }, `card_format = "8h10d"`},
		{"delimiter", func(c *config.Reader, o *Options) { c.Delimiter = "" }, "delimiter is empty"},
		{"unknown field", func(c *config.Reader, o *Options) { c.Fields = []string{"xgh", "idcard"} }, `unknown field "idcard"`},
		{"duplicate field", func(c *config.Reader, o *Options) { c.Fields = []string{"xgh", "xgh"} }, `"xgh" named twice`},
		{"fields without xgh", func(c *config.Reader, o *Options) { c.Fields = []string{"name", "-"} }, `no "xgh"`},
		{"json map target", func(c *config.Reader, o *Options) {
			c.Decoder, c.Map = "json", map[string]string{"a": "sfz"}
		}, `unknown field "sfz"`},
		{"json map twice", func(c *config.Reader, o *Options) {
			c.Decoder, c.Map = "json", map[string]string{"a": "xgh", "b": "xgh"}
		}, `keys "a" and "b" both renamed to "xgh"`},
		{"regex empty", func(c *config.Reader, o *Options) { c.Decoder = "regex" }, "pattern is empty"},
		{"regex invalid", func(c *config.Reader, o *Options) { c.Decoder, c.Pattern = "regex", "(?P<xgh>" }, "pattern: error parsing regexp"},
		{"regex no xgh", func(c *config.Reader, o *Options) { c.Decoder, c.Pattern = "regex", `(?P<name>\w+)` }, `no "xgh"`},
		{"regex bad group", func(c *config.Reader, o *Options) { c.Decoder, c.Pattern = "regex", `(?P<xgh>\d+)(?P<foo>\w)` }, `unknown field "foo"`},
		{"ack", func(c *config.Reader, o *Options) { c.AckOK = "7" }, `ack_ok = "7"`},
		{"usb", func(c *config.Reader, o *Options) { c.Port = "usb:1234" }, `port = "usb:1234"`},
		{"parity", func(c *config.Reader, o *Options) { c.Parity = "nope" }, `parity = "nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, o := testConfig("/dev/ttyUSB0"), opts
			tt.edit(&cfg, &o)
			_, err := New(cfg, store, o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if _, err := New(testConfig("/dev/ttyUSB0"), store, opts); err != nil {
		t.Errorf("New with the defaults: %v", err)
	}
}
