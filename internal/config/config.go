// Package config holds scanagent's configuration as plain data: the typed
// structs, their defaults, loading from TOML and validation that reports every
// problem with its key and position. It builds no components and opens no
// ports or files other than the ones it validates.
//
// [Load] and [Parse] start from [Default] (and each [[reader]] from
// [DefaultReader]), refuse unknown keys with a "did you mean" hint, resolve
// relative paths against the configuration file's directory, and run
// [Config.Validate]; every problem comes back at once as [Problems], printed
// as PATH:LINE:COL: key: message. Keys are named as the user writes them:
// "[platform] app_id", "reader[2].baud" (readers counted from 1).
// [Example] is the annotated example file (config.example.toml).
package config

import (
	"fmt"
	"strings"
	"time"
)

// Duration is a time.Duration read from a TOML string such as "5s" or "2m".
// A bare number is refused: BurntSushi/toml would otherwise read `timeout = 5`
// as five nanoseconds.
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string that carries a unit.
func (d *Duration) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: write a number with a unit, e.g. \"5s\", \"2m\", \"50ms\"", s)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration in Go's notation.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Config is the whole configuration file.
type Config struct {
	// Path is the file the configuration was read from ("" for Default()).
	Path string `toml:"-"`

	// src holds where each key is written, for the positions of problems
	// found by Validate; nil when not parsed from a file.
	src *source

	Agent    Agent    `toml:"agent"`
	Platform Platform `toml:"platform"`
	Upload   Upload   `toml:"upload"`
	Crypto   Crypto   `toml:"crypto"`
	Queue    Queue    `toml:"queue"`
	Readers  []Reader `toml:"reader"`
	Alerts   Alerts   `toml:"alerts"`
}

// Agent is the [agent] table.
type Agent struct {
	DataDir     string `toml:"data_dir"`
	LogLevel    string `toml:"log_level"`
	LogFile     string `toml:"log_file"`
	AdminListen string `toml:"admin_listen"`
	// LogFormat is "text" (logfmt-like lines) or "json" (one object a
	// line). Under systemd each line also carries a journald priority.
	LogFormat string `toml:"log_format"`
	// LogMaxSize is the size in MiB at which log_file is rotated, and
	// LogMaxFiles how many rotated files are kept.
	LogMaxSize  int `toml:"log_max_size"`
	LogMaxFiles int `toml:"log_max_files"`
}

// Platform is the [platform] table.
type Platform struct {
	BaseURL            string   `toml:"base_url"`
	TokenPath          string   `toml:"token_path"`
	ScanPath           string   `toml:"scan_path"`
	ClientID           string   `toml:"client_id"`
	ClientSecret       string   `toml:"client_secret"`
	ClientSecretFile   string   `toml:"client_secret_file"`
	AppID              string   `toml:"app_id"`
	Params             string   `toml:"params"`
	Timeout            Duration `toml:"timeout"`
	CAFile             string   `toml:"ca_file"`
	TokenRefreshBefore Duration `toml:"token_refresh_before"`
}

// Upload is the [upload] table.
type Upload struct {
	Concurrency      int      `toml:"concurrency"`
	RetryInitial     Duration `toml:"retry_initial"`
	RetryMax         Duration `toml:"retry_max"`
	MaxErrorAttempts int      `toml:"max_error_attempts"`
	HoldAfter        int      `toml:"hold_after"`
	MaxClockSkew     Duration `toml:"max_clock_skew"`
	DateFormat       string   `toml:"date_format"`
	Timezone         string   `toml:"timezone"`
}

// Crypto is the [crypto] table.
type Crypto struct {
	Mode     string `toml:"mode"`
	Encoding string `toml:"encoding"`
	IV       string `toml:"iv"`
}

// Queue is the [queue] table.
type Queue struct {
	MaxPending    int      `toml:"max_pending"`
	DedupeWindow  Duration `toml:"dedupe_window"`
	KeepDelivered int      `toml:"keep_delivered"`
}

// Alerts is the [alerts] table: operator alerts sent through the
// platform's msgsend.
type Alerts struct {
	To          []string `toml:"to"`           // xgh of the people to tell; empty = alerts off
	MessageType string   `toml:"message_type"` // "1" SMS, "4" e-mail, "5" App message, "6" App important message
	MessageTo   string   `toml:"message_to"`   // mobile number (1) or e-mail address (4)
	ReaderDown  Duration `toml:"reader_down"`
	BacklogAge  Duration `toml:"backlog_age"`
	Dead        bool     `toml:"dead"`
	Resend      Duration `toml:"resend"`
}

// Enabled reports whether anyone is to be told.
func (a Alerts) Enabled() bool { return len(a.To) > 0 }

// Reader is one [[reader]] table.
//
// Map renames the keys of the json decoder's objects: each key is a name the
// scanner's JSON uses, its value one of FieldNames, or "-" to ignore that
// key ([reader.map] "学工号" = "xgh"). JSON keys named like a field need no
// entry.
type Reader struct {
	Name      string   `toml:"name"`
	Port      string   `toml:"port"`
	Baud      int      `toml:"baud"`
	DataBits  int      `toml:"data_bits"`
	Parity    string   `toml:"parity"`
	StopBits  string   `toml:"stop_bits"`
	Framing   string   `toml:"framing"`
	IdleGap   Duration `toml:"idle_gap"`
	MaxFrame  int      `toml:"max_frame"`
	TermName  string   `toml:"term_name"`
	TermSn    string   `toml:"term_sn"`
	UserType  string   `toml:"user_type"`
	Decoder   string   `toml:"decoder"`
	Delimiter string   `toml:"delimiter"`
	Fields    []string `toml:"fields"`
	Pattern   string   `toml:"pattern"`
	Roster    string   `toml:"roster"`
	// CardFormat is the form card numbers are compared in by the card
	// decoder: hex, dec10, w26 or auto (see config.example.toml).
	CardFormat string            `toml:"card_format"`
	Map        map[string]string `toml:"map"`
	AckOK      string            `toml:"ack_ok"`
	AckFail    string            `toml:"ack_fail"`
	// Encoding is the character set the scanner sends: "utf-8", "gbk" or
	// "gb18030"; frames are transcoded to UTF-8 before decoding.
	Encoding string `toml:"encoding"`
	// IDCheck is "none" or "cn18": an idCard must then be an 18-character
	// resident ID number with a valid check character.
	IDCheck string `toml:"id_check"`
	// UserTypes maps what the scanner sends as userType to the label the
	// platform expects ({ "1" = "学生" }); a code not in it makes the scan
	// invalid. Empty: userType is sent as the scanner sent it.
	UserTypes map[string]string `toml:"user_types"`
}

// Default returns the configuration with every default of config.example.toml and no
// readers.
func Default() Config {
	return Config{
		Agent: Agent{
			DataDir:     DefaultDataDir(),
			LogLevel:    "info",
			AdminListen: "127.0.0.1:9465",
			LogFormat:   "text",
			LogMaxSize:  10,
			LogMaxFiles: 3,
		},
		Platform: Platform{
			BaseURL:            "https://open.zafu.edu.cn",
			TokenPath:          "/oauth/token",
			ScanPath:           "/api/scanrecord.jhtm",
			Params:             "form",
			Timeout:            Duration{15 * time.Second},
			TokenRefreshBefore: Duration{24 * time.Hour},
		},
		Upload: Upload{
			Concurrency:      2,
			RetryInitial:     Duration{time.Second},
			RetryMax:         Duration{30 * time.Second},
			MaxErrorAttempts: 5,
			HoldAfter:        3,
			MaxClockSkew:     Duration{2 * time.Minute},
			DateFormat:       "yyyy-MM-dd HH:mm:ss",
			Timezone:         "Asia/Shanghai",
		},
		Crypto: Crypto{Mode: "ecb", Encoding: "base64"},
		Queue: Queue{
			MaxPending:   1000000,
			DedupeWindow: Duration{3 * time.Second},
		},
		Alerts: Alerts{
			To:          []string{},
			MessageType: "5",
			ReaderDown:  Duration{10 * time.Minute},
			BacklogAge:  Duration{time.Hour},
			Dead:        true,
			Resend:      Duration{24 * time.Hour},
		},
	}
}

// DefaultReader returns a [[reader]] table with every default filled in; the
// loader starts each [[reader]] from it.
func DefaultReader() Reader {
	return Reader{
		Baud:       9600,
		DataBits:   8,
		Parity:     "none",
		StopBits:   "1",
		Framing:    "line",
		IdleGap:    Duration{50 * time.Millisecond},
		MaxFrame:   4096,
		Decoder:    "delimited",
		Delimiter:  ",",
		Fields:     []string{"xgh", "name", "idCard", "userType"},
		CardFormat: "hex",
		Encoding:   "utf-8",
		IDCheck:    "none",
		UserTypes:  map[string]string{},
	}
}
