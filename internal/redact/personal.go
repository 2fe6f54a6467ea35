package redact

import (
	"unicode/utf8"
)

// Personal data: the one masking policy for ID numbers in text. Everything
// that keeps or prints text which may hold an ID number (a rejected frame, a
// rejection reason, an answer from the platform, an error quoting a URL or a
// form) passes it through IDNumbers or Bytes; a field known to hold an ID
// number is shown through ID.

// MinDigits is the shortest run of digits masked as a possible ID number.
// Six is deliberately low: an ID number cut short, glued to other digits or
// split by spaces must not survive in part. Student numbers of six or more
// digits are masked too; the record's own xgh field is kept apart and is not
// passed through here.
const MinDigits = 6

// IDNumbers returns s with every possible ID number masked: a run of MinDigits
// or more digits (ASCII or full-width), possibly separated by spaces
// (ASCII or the ideographic space U+3000), with an optional trailing X (x,
// full-width Ｘ). Each digit and X is replaced by '*'; the spaces stay, so
// the text keeps its shape.
func IDNumbers(s string) string { return string(Bytes([]byte(s))) }

// Bytes is IDNumbers over raw bytes, which need not be valid UTF-8 (a frame
// as the scanner sent it). Each masked byte becomes '*', so the result has
// the length of b and keeps its layout. b is not changed.
func Bytes(b []byte) []byte {
	out := make([]byte, len(b))
	copy(out, b)
	for i := 0; i < len(out); {
		if n := digitAt(out, i); n == 0 {
			i += stepAt(out, i)
			continue
		}
		// A run: digit ((space)* digit)*.
		start, end, digits := i, i, 0
		for j := i; j < len(out); {
			if n := digitAt(out, j); n > 0 {
				digits++
				j += n
				end = j
				continue
			}
			if n := spaceAt(out, j); n > 0 {
				j += n
				continue
			}
			break
		}
		if digits >= MinDigits {
			if n := xAt(out, end); n > 0 {
				end += n
			}
			for k := start; k < end; {
				if n := spaceAt(out, k); n > 0 {
					k += n
					continue
				}
				out[k] = '*'
				k++
			}
		}
		i = end
	}
	return out
}

// BytesCut is Bytes for a frame that was cut short (too long, or
// unterminated): the digits at its end may be the first digits of an ID
// number, so they are masked whatever their number.
func BytesCut(b []byte) []byte {
	out := Bytes(b)
	for i := len(out); i > 0; {
		n := lastDigit(out[:i])
		if n == 0 {
			break
		}
		for k := i - n; k < i; k++ {
			out[k] = '*'
		}
		i -= n
	}
	return out
}

// ID shows a value known to be an ID number the way a technician may see it:
// the first 3 and last 4 characters kept, the rest '*' ("330***********123X").
// A value shorter than 10 characters is masked whole. The result has as many
// characters as s.
func ID(s string) string {
	r := []rune(s)
	keepHead, keepTail := 3, 4
	if len(r) < 10 {
		keepHead, keepTail = 0, 0
	}
	for i := keepHead; i < len(r)-keepTail; i++ {
		r[i] = '*'
	}
	return string(r)
}

// digitAt returns the byte length of the digit at b[i] (1 for ASCII, 3 for a
// full-width digit U+FF10–U+FF19), or 0.
func digitAt(b []byte, i int) int {
	if b[i] >= '0' && b[i] <= '9' {
		return 1
	}
	if i+2 < len(b) && b[i] == 0xEF && b[i+1] == 0xBC && b[i+2] >= 0x90 && b[i+2] <= 0x99 {
		return 3
	}
	return 0
}

// lastDigit returns the byte length of a digit that ends b, or 0.
func lastDigit(b []byte) int {
	n := len(b)
	if n >= 1 && b[n-1] >= '0' && b[n-1] <= '9' {
		return 1
	}
	if n >= 3 && digitAt(b, n-3) == 3 {
		return 3
	}
	return 0
}

// spaceAt returns the byte length of a space that may separate the digits of
// an ID number (ASCII space, U+3000), or 0.
func spaceAt(b []byte, i int) int {
	if i >= len(b) {
		return 0
	}
	if b[i] == ' ' {
		return 1
	}
	if i+2 < len(b) && b[i] == 0xE3 && b[i+1] == 0x80 && b[i+2] == 0x80 {
		return 3
	}
	return 0
}

// xAt returns the byte length of an ID number's check character X at b[i]
// (X, x, or full-width Ｘ U+FF38 / ｘ U+FF58), or 0.
func xAt(b []byte, i int) int {
	if i >= len(b) {
		return 0
	}
	if b[i] == 'X' || b[i] == 'x' {
		return 1
	}
	if i+2 < len(b) && b[i] == 0xEF && ((b[i+1] == 0xBC && b[i+2] == 0xB8) || (b[i+1] == 0xBD && b[i+2] == 0x98)) {
		return 3
	}
	return 0
}

// stepAt advances over one character that is not a digit: a whole UTF-8
// sequence when one starts at b[i], so a multi-byte character is never split.
func stepAt(b []byte, i int) int {
	_, n := utf8.DecodeRune(b[i:])
	return n
}
