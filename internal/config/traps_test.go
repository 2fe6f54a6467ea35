package config

import (
	"strings"
	"testing"
)

// TestTraps: values that parse but cannot be meant are problems naming the
// key and the fix, and the key's other checks do not repeat them.
func TestTraps(t *testing.T) {
	tests := []struct {
		name, goos string
		toml       string // added to a valid file's [agent] or reader
		wantKey    string
		wantMsg    string
	}{
		{"windows path in double quotes", "linux", `[agent]` + "\n" + `data_dir = "C:\temp\new"`, "[agent] data_dir",
			`holds a TAB and a newline, which cannot be meant; in a "double-quoted" TOML string a backslash starts an escape (\t is a TAB, \n a newline): write Windows paths and other text with backslashes in single quotes: data_dir = 'C:\temp\new'`},
		{"control character in term_name", "linux", "[[reader]]\nname = \"r\"\nport = \"/dev/ttyS0\"\nterm_name = \"gate\\u001b[2J\"\nterm_sn = \"sn\"", "reader[1].term_name", `holds control character U+001B; remove it: term_name = "gate[2J"`},
		{"COM port on linux", "linux", "[[reader]]\nname = \"r\"\nport = \"COM3\"\nterm_name = \"t\"\nterm_sn = \"sn\"", "reader[1].port",
			`is "COM3", a Windows port name; on this system a serial port is a device such as "/dev/ttyS2"`},
		{"relative device", "linux", "[[reader]]\nname = \"r\"\nport = \"ttyUSB0\"\nterm_name = \"t\"\nterm_sn = \"sn\"", "reader[1].port", `did you mean "/dev/ttyUSB0"?`},
		{"trailing space", "linux", "[[reader]]\nname = \"r\"\nport = \"/dev/ttyUSB0 \"\nterm_name = \"t\"\nterm_sn = \"sn\"", "reader[1].port", `is "/dev/ttyUSB0 ", with a space at its start or end; remove it: port = "/dev/ttyUSB0"`},
		{"linux device on windows", "windows", "[[reader]]\nname = \"r\"\nport = \"/dev/ttyUSB0\"\nterm_name = \"t\"\nterm_sn = \"sn\"", "reader[1].port", `a Linux device name; on Windows a serial port is "COM3"`},
		{"COM port on windows", "windows", "[[reader]]\nname = \"r\"\nport = \"COM3\"\nterm_name = \"t\"\nterm_sn = \"sn\"", "", ""},
		{"tab delimiter", "linux", "[[reader]]\nname = \"r\"\nport = \"/dev/ttyS0\"\nterm_name = \"t\"\nterm_sn = \"sn\"\ndelimiter = \"\\t\"", "", ""},
		{"client_secret with a space", "linux", "[platform]\nclient_id = \"c\"\nclient_secret = \"s3cret \"\napp_id = \"01\"\n[[reader]]\nname = \"r\"\nport = \"/dev/ttyS0\"\nterm_name = \"t\"\nterm_sn = \"sn\"", "[platform] client_secret", "with a space at its start or end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := goos
			goos = tt.goos
			defer func() { goos = old }()
			text := tt.toml
			if !strings.Contains(text, "[platform]") {
				text = "[platform]\nclient_id = \"c\"\nclient_secret = \"s\"\napp_id = \"01\"\n" + text
			}
			if !strings.Contains(text, "[[reader]]") {
				text += "\n[[reader]]\nname = \"r\"\nport = \"/dev/ttyS0\"\nterm_name = \"t\"\nterm_sn = \"sn\"\n"
			}
			_, err := Parse([]byte(text), "")
			if tt.wantKey == "" {
				if err != nil {
					t.Fatalf("Parse: %v, want no problem", err)
				}
				return
			}
			probs, ok := err.(Problems)
			if !ok || len(probs) != 1 {
				t.Fatalf("Parse: %v; want one problem for %s", err, tt.wantKey)
			}
			if probs[0].Key != tt.wantKey || !strings.Contains(probs[0].Msg, tt.wantMsg) || probs[0].Line == 0 {
				t.Errorf("got %s\nwant key %s, a line, and %q", probs[0], tt.wantKey, tt.wantMsg)
			}
		})
	}
}

// TestSyntaxHints: raw TOML errors come with the key and the fix.
func TestSyntaxHints(t *testing.T) {
	head := "[platform]\nclient_id = \"c\"\nclient_secret = \"s\"\napp_id = \"01\"\n"
	reader := "[[reader]]\nname = \"r\"\nport = \"/dev/ttyS0\"\nterm_name = \"t\"\nterm_sn = \"sn\"\n"
	tests := []struct {
		name, text, want string
	}{
		{"bare hex", head + reader + "ack_ok = 07\n", `10:10: ack_ok: Invalid integer "07": cannot have leading zeroes; text, hex bytes and durations are written in quotes: ack_ok = "07"`},
		{"bare duration", head + reader + "idle_gap = 50ms  # pause\n", `idle_gap: expected a top-level item to end with a newline, comment, or EOF, but got 'm' instead; text, hex bytes and durations are written in quotes: idle_gap = "50ms"`},
		{"curly quotes", head + reader + "user_type = “学生”\n", `user_type: expected value but found '“' instead; these are typographic quotes (a word processor or chat app curled them): type straight quotes, as in user_type = "学生"`},
		{"map before reader", head + "[reader.map]\nstudent = \"xgh\"\n" + reader, `[reader.map] (or another [reader.…] table) comes before the first [[reader]]: move it below the [[reader]] table it belongs to`},
		{"windows path", "[agent]\ndata_dir = \"C:\\Data\\x\"\n" + head + reader, `2:13: data_dir: invalid escape in string '\D'; backslashes need single quotes`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.text), "c.toml")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v\nwant %q", err, tt.want)
			}
		})
	}
}
