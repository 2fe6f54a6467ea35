package field

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		max         int
		want        string // "" = valid
	}{
		{"plain", "张三", MaxName, ""},
		{"inner spaces", "Anna Maria", MaxName, ""},
		{"at the limit", strings.Repeat("张", 8), 8, ""},
		{"empty", "", MaxName, "is empty"},
		{"spaces only", " \u3000 ", MaxName, "is empty"},
		{"escape", "\x1b[2J", MaxXgh, "holds control character U+001B"},
		{"tab", "a\tb", MaxName, "holds control character U+0009"},
		{"del", "a\x7f", MaxName, "holds control character U+007F"},
		{"c1 csi", "a\u009b2J", MaxName, "holds control character U+009B"},
		{"nul", "2021\x00001", MaxXgh, "holds control character U+0000"},
		{"not utf-8", "\xd5\xc5\xc8\xfd", MaxName, "is not valid UTF-8"}, // 张三 in GBK
		{"too long", strings.Repeat("张", 9), 8, "is 9 characters long; at most 8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.value, tc.max)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Fatalf("Check(%q, %d) = %q, want %q", tc.value, tc.max, got, tc.want)
			}
		})
	}
}

func TestCN18(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want string // a part of the message; "" = valid
	}{
		{"11010519491231002X", ""}, // GB 11643's published example
		{"11010519491231002x", ""},
		{"330102199001011234", ""},
		{"330102199001011237", "check character does not match"},
		{"11010519491231002Y", "17 digits and a check character"},
		{"1101051949123100X2", "17 digits and a check character"},
		{"11010519491231002", "not 18 characters"},
		{"E12345678", "not 18 characters"}, // a passport number
		{"１１０１０５１９４９１２３１００２Ｘ", "not 18 characters"},
	} {
		err := CN18(tc.id)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("CN18(%q) = %v, want nil", tc.id, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("CN18(%q) = %v, want %q", tc.id, err, tc.want)
		case err != nil && strings.ContainsAny(err.Error(), "0123456789X") && strings.Contains(err.Error(), tc.id):
			t.Errorf("CN18(%q) quotes the number: %v", tc.id, err)
		}
	}
}

// TestCN18AnyCheckCharacter: for 17 digits exactly one of the 11 check
// characters is valid.
func TestCN18AnyCheckCharacter(t *testing.T) {
	for _, d17 := range []string{"33010219900101123", "00000000000000000", "99999999999999999", "11010519491231002"} {
		valid := 0
		for _, c := range "0123456789X" {
			if CN18(d17+string(c)) == nil {
				valid++
			}
		}
		if valid != 1 {
			t.Errorf("%s: %d valid check characters, want 1", d17, valid)
		}
	}
}
