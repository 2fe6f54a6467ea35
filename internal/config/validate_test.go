package config

import (
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// validConfig is the smallest configuration that passes Validate.
func validConfig() Config {
	c := Default()
	c.Platform.ClientID = "client"
	c.Platform.ClientSecret = "secret"
	c.Platform.AppID = "01"
	r := DefaultReader()
	r.Name, r.Port, r.TermName, r.TermSn = "r1", "/dev/ttyUSB0", "term", "sn"
	c.Readers = []Reader{r}
	return c
}

func TestValidate(t *testing.T) {
	t.Setenv(EnvSecret, "")
	roster := mustWrite(t, t.TempDir(), "roster.csv", "card,xgh,name,idCard,userType\n")
	missing := filepath.Join(t.TempDir(), "missing")
	second := func(c *Config) *Reader {
		r := c.Readers[0]
		r.Name, r.Port = "r2", "/dev/ttyUSB1"
		c.Readers = append(c.Readers, r)
		return &c.Readers[1]
	}
	tests := []struct {
		name    string
		mutate  func(c *Config)
		wantKey string // "" for no problem
		wantMsg string
	}{
		{"valid", func(c *Config) {}, "", ""},

		{"log_level", func(c *Config) { c.Agent.LogLevel = "loud" }, "[agent] log_level", `is "loud"; use "debug", "info", "warn" or "error"`},
		{"log_level empty", func(c *Config) { c.Agent.LogLevel = "" }, "[agent] log_level", `is empty; use "debug"`},
		{"data_dir", func(c *Config) { c.Agent.DataDir = "" }, "[agent] data_dir", "is empty"},
		{"admin_listen bad", func(c *Config) { c.Agent.AdminListen = "9465" }, "[agent] admin_listen", `use host:port`},
		{"admin_listen port", func(c *Config) { c.Agent.AdminListen = "127.0.0.1:99999" }, "[agent] admin_listen", `use host:port`},
		{"admin_listen off", func(c *Config) { c.Agent.AdminListen = "" }, "", ""},
		{"admin_listen any host", func(c *Config) { c.Agent.AdminListen = ":9465" }, "", ""},
		{"log_format", func(c *Config) { c.Agent.LogFormat = "xml" }, "[agent] log_format", `use "text" or "json"`},
		{"log_format json", func(c *Config) { c.Agent.LogFormat = "json" }, "", ""},
		{"log_max_size", func(c *Config) { c.Agent.LogMaxSize = 0 }, "[agent] log_max_size", "use 1 to 4096"},
		{"log_max_files", func(c *Config) { c.Agent.LogMaxFiles = 0 }, "[agent] log_max_files", "use 1 to 100"},

		{"alerts on", func(c *Config) { c.Alerts.To = []string{"20121032"} }, "", ""},
		{"alerts blank person", func(c *Config) { c.Alerts.To = []string{" "} }, "[alerts] to", "entry 1 is empty"},
		{"alerts nobody but message_to", func(c *Config) { c.Alerts.MessageTo = "13800000000" }, "[alerts] to", "alerts are off, but message_to is set"},
		{"alerts message_type", func(c *Config) { c.Alerts.To, c.Alerts.MessageType = []string{"1"}, "3" }, "[alerts] message_type", `use "1", "4", "5" or "6"`},
		{"alerts sms without number", func(c *Config) { c.Alerts.To, c.Alerts.MessageType = []string{"1"}, "1" }, "[alerts] message_to", "needs the mobile number"},
		{"alerts sms bad number", func(c *Config) { c.Alerts.To, c.Alerts.MessageType, c.Alerts.MessageTo = []string{"1"}, "1", "it@x.cn" }, "[alerts] message_to", "not a mobile number"},
		{"alerts sms", func(c *Config) {
			c.Alerts.To, c.Alerts.MessageType, c.Alerts.MessageTo = []string{"1"}, "1", "13800000000"
		}, "", ""},
		{"alerts mail without address", func(c *Config) { c.Alerts.To, c.Alerts.MessageType = []string{"1"}, "4" }, "[alerts] message_to", "needs the address"},
		{"alerts mail bad address", func(c *Config) {
			c.Alerts.To, c.Alerts.MessageType, c.Alerts.MessageTo = []string{"1"}, "4", "13800000000"
		}, "[alerts] message_to", "not an e-mail address"},
		{"alerts mail", func(c *Config) {
			c.Alerts.To, c.Alerts.MessageType, c.Alerts.MessageTo = []string{"1"}, "4", "it@zafu.edu.cn"
		}, "", ""},
		{"alerts app important", func(c *Config) { c.Alerts.To, c.Alerts.MessageType = []string{"1"}, "6" }, "", ""},
		{"alerts reader_down", func(c *Config) { c.Alerts.ReaderDown.Duration = 0 }, "[alerts] reader_down", "more than 0"},
		{"alerts resend", func(c *Config) { c.Alerts.Resend.Duration = -time.Second }, "[alerts] resend", "more than 0"},

		{"base_url no scheme", func(c *Config) { c.Platform.BaseURL = "open.zafu.edu.cn" }, "[platform] base_url", "absolute http:// or https:// URL"},
		{"base_url ftp", func(c *Config) { c.Platform.BaseURL = "ftp://open.zafu.edu.cn" }, "[platform] base_url", "absolute http"},
		{"base_url empty", func(c *Config) { c.Platform.BaseURL = "" }, "[platform] base_url", "absolute http"},
		{"base_url http", func(c *Config) { c.Platform.BaseURL = "http://10.0.0.1:8080" }, "", ""},
		{"token_path", func(c *Config) { c.Platform.TokenPath = "oauth/token" }, "[platform] token_path", `starting with /`},
		{"scan_path", func(c *Config) { c.Platform.ScanPath = "" }, "[platform] scan_path", `starting with /`},
		{"client_id", func(c *Config) { c.Platform.ClientID = "" }, "[platform] client_id", "is empty"},
		{"client_secret", func(c *Config) { c.Platform.ClientSecret = "" }, "[platform] client_secret", "set [platform] client_secret, client_secret_file or SCANAGENT_CLIENT_SECRET"},
		{"client_secret_file missing", func(c *Config) { c.Platform.ClientSecret, c.Platform.ClientSecretFile = "", missing }, "[platform] client_secret_file", "does not exist"},
		{"app_id empty", func(c *Config) { c.Platform.AppID = "" }, "[platform] app_id", "is empty"},
		{"app_id 17 bytes", func(c *Config) { c.Platform.AppID = "12345678901234567" }, "[platform] app_id", "is 17 bytes long; at most 16"},
		{"app_id 16 bytes", func(c *Config) { c.Platform.AppID = "1234567890123456" }, "", ""},
		{"params", func(c *Config) { c.Platform.Params = "json" }, "[platform] params", `use "form" or "query"`},
		{"params query", func(c *Config) { c.Platform.Params = "query" }, "", ""},
		{"timeout", func(c *Config) { c.Platform.Timeout.Duration = 0 }, "[platform] timeout", "more than 0"},
		{"ca_file missing", func(c *Config) { c.Platform.CAFile = missing }, "[platform] ca_file", "does not exist"},
		{"ca_file not PEM", func(c *Config) { c.Platform.CAFile = roster }, "[platform] ca_file", "no PEM certificate"},
		{"token_refresh_before", func(c *Config) { c.Platform.TokenRefreshBefore.Duration = -time.Hour }, "[platform] token_refresh_before", "negative"},

		{"concurrency 0", func(c *Config) { c.Upload.Concurrency = 0 }, "[upload] concurrency", "is 0; use 1 to 64"},
		{"concurrency 65", func(c *Config) { c.Upload.Concurrency = 65 }, "[upload] concurrency", "is 65; use 1 to 64"},
		{"concurrency 64", func(c *Config) { c.Upload.Concurrency = 64 }, "", ""},
		{"retry_initial", func(c *Config) { c.Upload.RetryInitial.Duration = 0 }, "[upload] retry_initial", "more than 0"},
		{"retry_max < retry_initial", func(c *Config) { c.Upload.RetryMax.Duration = 500 * time.Millisecond }, "[upload] retry_max", "is 500ms, less than retry_initial (1s)"},
		{"retry_max = retry_initial", func(c *Config) { c.Upload.RetryMax.Duration = time.Second }, "", ""},
		{"max_error_attempts", func(c *Config) { c.Upload.MaxErrorAttempts = 0 }, "[upload] max_error_attempts", "is 0; use 1 or more"},
		{"date_format", func(c *Config) { c.Upload.DateFormat = " " }, "[upload] date_format", "is empty"},
		{"hold_after 1", func(c *Config) { c.Upload.HoldAfter = 1 }, "[upload] hold_after", "is 1; use 2 or more"},
		{"hold_after 2", func(c *Config) { c.Upload.HoldAfter = 2 }, "", ""},
		{"max_clock_skew 0", func(c *Config) { c.Upload.MaxClockSkew.Duration = 0 }, "[upload] max_clock_skew", "more than 0"},
		{"timezone unknown", func(c *Config) { c.Upload.Timezone = "Mars/Olympus" }, "[upload] timezone", `is "Mars/Olympus", an unknown time zone`},
		{"timezone empty", func(c *Config) { c.Upload.Timezone = "" }, "[upload] timezone", "is empty"},
		{"timezone UTC", func(c *Config) { c.Upload.Timezone = "UTC" }, "", ""},
		{"timezone Urumqi", func(c *Config) { c.Upload.Timezone = "Asia/Urumqi" }, "", ""},

		{"mode", func(c *Config) { c.Crypto.Mode = "gcm" }, "[crypto] mode", `use "ecb" or "cbc"`},
		{"encoding", func(c *Config) { c.Crypto.Encoding = "b64" }, "[crypto] encoding", `use "base64" or "hex"`},
		{"iv short", func(c *Config) { c.Crypto.Mode, c.Crypto.IV = "cbc", "short" }, "[crypto] iv", "is 5 bytes long"},
		{"iv 16", func(c *Config) { c.Crypto.Mode, c.Crypto.IV = "cbc", "0123456789abcdef" }, "", ""},

		{"max_pending", func(c *Config) { c.Queue.MaxPending = 0 }, "[queue] max_pending", "is 0; use 1 or more"},
		{"dedupe_window", func(c *Config) { c.Queue.DedupeWindow.Duration = -1 }, "[queue] dedupe_window", "negative"},
		{"dedupe_window 0", func(c *Config) { c.Queue.DedupeWindow.Duration = 0 }, "", ""},
		{"keep_delivered", func(c *Config) { c.Queue.KeepDelivered = -1 }, "[queue] keep_delivered", "is -1"},

		{"no reader", func(c *Config) { c.Readers = nil }, "[[reader]]", "add a [[reader]] table"},
		{"name", func(c *Config) { c.Readers[0].Name = "" }, "reader[1].name", "is empty"},
		{"name duplicate", func(c *Config) { second(c).Name = "r1" }, "reader[2].name", `"r1" is also the name of reader[1]`},
		{"port", func(c *Config) { c.Readers[0].Port = "" }, "reader[1].port", "is empty"},
		{"port duplicate", func(c *Config) { second(c).Port = "/dev/ttyUSB0" }, "reader[2].port", "is also the port of reader[1]"},
		{"port usb bad", func(c *Config) { c.Readers[0].Port = "usb:1a86:75" }, "reader[1].port", `"usb:VID:PID"`},
		{"port usb", func(c *Config) { c.Readers[0].Port = "usb:1A86:7523:A1B2" }, "", ""},
		{"port usb", func(c *Config) { c.Readers[0].Port = "usb:1a86:7523" }, "", ""},
		{"baud", func(c *Config) { c.Readers[0].Baud = 0 }, "reader[1].baud", "is 0"},
		{"data_bits 4", func(c *Config) { c.Readers[0].DataBits = 4 }, "reader[1].data_bits", "use 5, 6, 7 or 8"},
		{"data_bits 9", func(c *Config) { c.Readers[0].DataBits = 9 }, "reader[1].data_bits", "use 5, 6, 7 or 8"},
		{"data_bits 7", func(c *Config) { c.Readers[0].DataBits = 7 }, "", ""},
		{"parity", func(c *Config) { c.Readers[0].Parity = "N" }, "reader[1].parity", `use "none", "odd", "even", "mark" or "space"`},
		{"parity space", func(c *Config) { c.Readers[0].Parity = "space" }, "", ""},
		{"stop_bits", func(c *Config) { c.Readers[0].StopBits = "3" }, "reader[1].stop_bits", `use "1", "1.5" or "2"`},
		{"stop_bits 1.5", func(c *Config) { c.Readers[0].StopBits = "1.5" }, "", ""},
		{"framing", func(c *Config) { c.Readers[0].Framing = "cr" }, "reader[1].framing", `use "line", "idle" or "stx-etx"`},
		{"framing stx-etx", func(c *Config) { c.Readers[0].Framing = "stx-etx" }, "", ""},
		{"idle_gap", func(c *Config) { c.Readers[0].IdleGap.Duration = 0 }, "reader[1].idle_gap", "more than 0"},
		{"max_frame 15", func(c *Config) { c.Readers[0].MaxFrame = 15 }, "reader[1].max_frame", "use 16 to 1048576"},
		{"max_frame too big", func(c *Config) { c.Readers[0].MaxFrame = 1<<20 + 1 }, "reader[1].max_frame", "use 16 to 1048576"},
		{"max_frame 16", func(c *Config) { c.Readers[0].MaxFrame = 16 }, "", ""},
		{"term_name", func(c *Config) { c.Readers[0].TermName = "" }, "reader[1].term_name", "is empty"},
		{"term_sn", func(c *Config) { c.Readers[0].TermSn = "" }, "reader[1].term_sn", "is empty"},
		{"term_name escape", func(c *Config) { c.Readers[0].TermName = "gate\x1b[2J" }, "reader[1].term_name", "holds control character U+001B"},
		{"term_name too long", func(c *Config) { c.Readers[0].TermName = strings.Repeat("食", 65) }, "reader[1].term_name", "is 65 characters long; at most 64"},
		{"term_sn newline", func(c *Config) { c.Readers[0].TermSn = "SN\n1" }, "reader[1].term_sn", "holds a newline, which cannot be meant"},
		{"app_id tab", func(c *Config) { c.Platform.AppID = "0\t1" }, "[platform] app_id", "holds a TAB, which cannot be meant"},
		{"user_type c1", func(c *Config) { c.Readers[0].UserType = "学生\u0085" }, "reader[1].user_type", "holds control character U+0085"},
		{"user_type set", func(c *Config) { c.Readers[0].UserType = "学生" }, "", ""},
		{"reader encoding", func(c *Config) { c.Readers[0].Encoding = "big5" }, "reader[1].encoding", `is "big5"; use "utf-8", "gbk" or "gb18030"`},
		{"reader encoding gbk", func(c *Config) { c.Readers[0].Encoding = "gbk" }, "", ""},
		{"reader encoding gb18030", func(c *Config) { c.Readers[0].Encoding = "gb18030" }, "", ""},
		{"id_check", func(c *Config) { c.Readers[0].IDCheck = "cn" }, "reader[1].id_check", `is "cn"; use "none" or "cn18"`},
		{"id_check cn18", func(c *Config) { c.Readers[0].IDCheck = "cn18" }, "", ""},
		{"user_types ok", func(c *Config) { c.Readers[0].UserTypes = map[string]string{"1": "学生", "2": "教师"} }, "", ""},
		{"user_types empty label", func(c *Config) { c.Readers[0].UserTypes = map[string]string{"1": " "} }, "reader[1].user_types.1", "is empty"},
		{"user_types empty code", func(c *Config) { c.Readers[0].UserTypes = map[string]string{"": "学生"} }, "reader[1].user_types", "has an empty code"},
		{"decoder", func(c *Config) { c.Readers[0].Decoder = "xml" }, "reader[1].decoder", `use "json", "delimited", "regex" or "card"`},
		{"decoder json", func(c *Config) { c.Readers[0].Decoder = "json" }, "", ""},
		{"delimiter", func(c *Config) { c.Readers[0].Delimiter = "" }, "reader[1].delimiter", "is empty"},
		{"fields without xgh", func(c *Config) { c.Readers[0].Fields = []string{"name", "-", ""} }, "reader[1].fields", `has no "xgh"`},
		{"fields unknown", func(c *Config) { c.Readers[0].Fields = []string{"xgh", "xhg"} }, "reader[1].fields", `item 2 is "xhg"; use "xgh", "name", "idCard", "userType" or "card", or "" or "-" to skip a column`},
		{"fields twice", func(c *Config) { c.Readers[0].Fields = []string{"xgh", "xgh"} }, "reader[1].fields", `names "xgh" twice`},
		{"fields skip", func(c *Config) { c.Readers[0].Fields = []string{"-", "xgh", "", "card"} }, "", ""},
		{"regex empty", func(c *Config) { c.Readers[0].Decoder = "regex" }, "reader[1].pattern", "is empty"},
		{"regex bad", func(c *Config) { c.Readers[0].Decoder, c.Readers[0].Pattern = "regex", "(?P<xgh>" }, "reader[1].pattern", "does not compile"},
		{"regex no xgh", func(c *Config) { c.Readers[0].Decoder, c.Readers[0].Pattern = "regex", `(?P<name>\w+)` }, "reader[1].pattern", "no group named xgh"},
		{"regex other group", func(c *Config) { c.Readers[0].Decoder, c.Readers[0].Pattern = "regex", `(?P<xgh>\d+)(?P<age>\d+)` }, "reader[1].pattern", `group "age"`},
		{"regex ok", func(c *Config) {
			c.Readers[0].Decoder, c.Readers[0].Pattern = "regex", `^(?P<xgh>\d+),(?P<name>[^,]*)$`
		}, "", ""},
		{"card no roster", func(c *Config) { c.Readers[0].Decoder = "card" }, "reader[1].roster", "is empty"},
		{"card roster missing", func(c *Config) { c.Readers[0].Decoder, c.Readers[0].Roster = "card", missing }, "reader[1].roster", "does not exist"},
		{"card roster dir", func(c *Config) { c.Readers[0].Decoder, c.Readers[0].Roster = "card", t.TempDir() }, "reader[1].roster", "not a regular file"},
		{"card ok", func(c *Config) { c.Readers[0].Decoder, c.Readers[0].Roster = "card", roster }, "", ""},
		{"card format", func(c *Config) { c.Readers[0].CardFormat = "8h10d" }, "reader[1].card_format", `is "8h10d"; use "hex", "dec10", "w26" or "auto"`},
		{"card format w26", func(c *Config) {
			c.Readers[0].Decoder, c.Readers[0].Roster, c.Readers[0].CardFormat = "card", roster, "w26"
		}, "", ""},
		{"map to unknown field", func(c *Config) { c.Readers[0].Map = map[string]string{"studentNo": "student"} }, "reader[1].map.studentNo", `is "student", not a field`},
		{"map twice", func(c *Config) { c.Readers[0].Map = map[string]string{"a": "xgh", "b": "xgh"} }, "reader[1].map.b", `renames to "xgh", as "a" already does`},
		{"map ok", func(c *Config) {
			c.Readers[0].Map = map[string]string{"学工号": "xgh", "sfz": "idCard", "skip": "-"}
		}, "", ""},
		{"ack_ok odd", func(c *Config) { c.Readers[0].AckOK = "7" }, "reader[1].ack_ok", `"7" has an odd number of hex digits; write hex bytes such as "07" or "06 0d"`},
		{"ack_fail not hex", func(c *Config) { c.Readers[0].AckFail = "zz" }, "reader[1].ack_fail", "not a hex digit"},
		{"ack ok", func(c *Config) { c.Readers[0].AckOK, c.Readers[0].AckFail = "06 0d", "15" }, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(&c)
			got := c.Validate()
			if tt.wantKey == "" {
				if len(got) != 0 {
					t.Fatalf("got %q, want no problem", got.Error())
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("got %d problems %q, want 1", len(got), got.Error())
			}
			if got[0].Key != tt.wantKey || !strings.Contains(got[0].Msg, tt.wantMsg) {
				t.Errorf("got %q, want key %q with a message containing %q", got[0].String(), tt.wantKey, tt.wantMsg)
			}
		})
	}
}

func TestValidateDefaultListsRequiredKeys(t *testing.T) {
	t.Setenv(EnvSecret, "")
	c := Default()
	var got []string
	for _, p := range c.Validate() {
		got = append(got, p.Key)
	}
	want := []string{"[platform] client_id", "[platform] client_secret", "[platform] app_id", "[[reader]]"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestParseHex(t *testing.T) {
	tests := []struct {
		in      string
		want    string // as %x
		wantErr bool
	}{
		{"", "", false},
		{"07", "07", false},
		{"06 0d", "060d", false},
		{"060D", "060d", false},
		{" 02\t03 ", "0203", false},
		{"7", "", true},
		{"0x07", "", true},
		{"zz", "", true},
		{"06 0", "", true},
	}
	for _, tt := range tests {
		b, err := ParseHex(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseHex(%q): got error %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if got := hex.EncodeToString(b); got != tt.want {
			t.Errorf("ParseHex(%q): got %s, want %s", tt.in, got, tt.want)
		}
	}
}
