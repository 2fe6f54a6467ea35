package redact

import (
	"bytes"
	"testing"
)

func TestIDNumbers(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"12345", "12345"},
		{"123456", "******"},
		{"身份证号33010219900101123X校验失败", "身份证号******************校验失败"},
		{"id 330102199001011234x.", "id *******************."},
		{"3301 0219 9001 0112 3X", "**** **** **** **** **"},
		{"３３０１０２１９９００１０１１２３Ｘ", "******************************************************"},
		{"3301０２19900101123", "*********************"},
		{"a,12,b", "a,12,b"},
		{"2026-11-30 05:28:05", "2026-11-30 05:28:05"},
		{"xgh=2020123456&x=1", "xgh=**********&x=1"},
		{"12345 X", "12345 X"},
		{"port 127.0.0.1:9465", "port 127.0.0.1:9465"},
		{"漢字", "漢字"},
	} {
		if got := IDNumbers(tt.in); got != tt.want {
			t.Errorf("IDNumbers(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestBytesKeepsLengthAndInput(t *testing.T) {
	in := []byte("\xff\xfe330102199001011234\x00")
	orig := bytes.Clone(in)
	out := Bytes(in)
	if !bytes.Equal(in, orig) {
		t.Error("Bytes changed its argument")
	}
	if len(out) != len(in) {
		t.Fatalf("len %d, want %d", len(out), len(in))
	}
	if bytes.Contains(out, []byte("1990")) {
		t.Errorf("got %q: digits kept", out)
	}
}

func TestBytesCut(t *testing.T) {
	if got := string(BytesCut([]byte("a,12,3301"))); got != "a,12,****" {
		t.Errorf("BytesCut = %q, want %q", got, "a,12,****")
	}
	if got := string(BytesCut([]byte("a,１2"))); got != "a,****" {
		t.Errorf("BytesCut = %q, want %q", got, "a,****")
	}
}

func TestID(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"33010219900101123X", "330***********123X"},
		{"E1234567", "********"},
		{"", ""},
	} {
		if got := ID(tt.in); got != tt.want {
			t.Errorf("ID(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzBytes(f *testing.F) {
	f.Add([]byte("身份证号33010219900101123X"))
	f.Add([]byte("３３０１ ０２１９９００１０１１２３Ｘ"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out := Bytes(in)
		if len(out) != len(in) {
			t.Fatalf("length %d, want %d", len(out), len(in))
		}
		if !bytes.Equal(Bytes(out), out) {
			t.Fatalf("not idempotent: %q", out)
		}
		// No run of MinDigits ASCII digits survives.
		run := 0
		for _, c := range out {
			if c >= '0' && c <= '9' {
				run++
				if run >= MinDigits {
					t.Fatalf("digits survive in %q", out)
				}
			} else if c != ' ' {
				run = 0
			}
		}
	})
}
