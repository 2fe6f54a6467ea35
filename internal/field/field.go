// Package field holds the rules every text field of a scan record must
// satisfy before the record is stored, acknowledged or sent: present (not
// empty after trimming spaces), valid UTF-8, free of control characters (C0,
// DEL and C1: what unicode.IsControl reports, which is also what a terminal
// acts on), and no longer than the field's maximum. The platform requires
// every parameter of a scan record, so a field that breaks a rule would be
// refused there, after the person at the scanner heard the OK beep.
//
// The reader applies the rules to each decoded scan (xgh, name, idCard,
// userType); `config check` applies them once to the record's constants
// (term_name, term_sn, app_id). It also holds the optional check of a
// Chinese resident ID number (CN18). It does not trim, map or change a
// value, and its messages never quote the value (it may be personal data).
package field

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Maximum lengths, in characters (not bytes), of the fields of a scan
// record. They are generous for what each field holds (a student or staff
// number, a person's name, an ID or passport number, a user type label, a
// terminal's name and serial number) and short enough that a frame of
// concatenated garbage is not taken for a person.
const (
	MaxXgh      = 32
	MaxName     = 64
	MaxIDCard   = 32
	MaxUserType = 32
	MaxTermName = 64
	MaxTermSn   = 64
	MaxAppID    = 16 // bytes: app_id is also the AES-128 key
)

// Check returns why value breaks a rule for a field of at most max
// characters, or nil. The message reads after the field's name: "name: is
// empty", "xgh: holds control character U+001B".
func Check(value string, max int) error {
	switch {
	case !utf8.ValidString(value):
		return fmt.Errorf("is not valid UTF-8")
	case strings.TrimSpace(value) == "":
		return fmt.Errorf("is empty")
	}
	for _, r := range value {
		if IsControl(r) {
			return fmt.Errorf("holds control character %U", r)
		}
	}
	if n := utf8.RuneCountInString(value); n > max {
		return fmt.Errorf("is %d characters long; at most %d", n, max)
	}
	return nil
}

// IsControl reports whether r is a control character a field may not hold
// and a terminal must not be sent: C0 (U+0000–U+001F), DEL (U+007F) and C1
// (U+0080–U+009F).
func IsControl(r rune) bool { return unicode.IsControl(r) }

// cn18Weights are the ISO 7064 MOD 11-2 weights of the first 17 digits
// (2^(17-i) mod 11).
var cn18Weights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}

// CN18 checks a resident ID number of the People's Republic of China
// (GB 11643): 18 characters, 17 digits and the ISO 7064 MOD 11-2 check
// character, a digit or X (upper or lower case). Its messages read after
// the field's name, like Check's.
func CN18(id string) error {
	if len(id) != 18 {
		return fmt.Errorf("is not 18 characters (id_check = %q)", "cn18")
	}
	sum := 0
	for i := range 17 {
		c := id[i]
		if c < '0' || c > '9' {
			return fmt.Errorf("is not 17 digits and a check character (id_check = %q)", "cn18")
		}
		sum += int(c-'0') * cn18Weights[i]
	}
	want := "10X98765432"[sum%11]
	got := id[17]
	if got == 'x' {
		got = 'X'
	}
	if (got < '0' || got > '9') && got != 'X' {
		return fmt.Errorf("is not 17 digits and a check character (id_check = %q)", "cn18")
	}
	if got != want {
		return fmt.Errorf("check character does not match the 17 digits (ISO 7064 MOD 11-2, id_check = %q)", "cn18")
	}
	return nil
}
