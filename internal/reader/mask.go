package reader

// Redaction: the one place where the reader hides ID numbers before anything
// leaves it for a disk or a log.

// minIDRun is the shortest run of ASCII digits treated as a possible Chinese
// resident ID number (the old 15-digit form; the current form is 17 digits
// and a check character that is a digit or X).
const minIDRun = 15

// MaskIDNumbers returns a copy of b in which anything that looks like a
// Chinese resident ID number is replaced by '*' bytes of the same length, so
// the result is as long as b and keeps its layout.
//
// It errs on the side of privacy: every run of 15 or more ASCII digits is
// masked whole (an ID number glued to other digits is still hidden), and an
// 'X' or 'x' right after a run of 17 or more digits is masked with it. Shorter
// digit runs (student numbers, card numbers of up to 14 digits) are kept, so a
// rejected frame stays useful for diagnosis. Full-width digits and ID numbers
// written with spaces inside are not recognised.
func MaskIDNumbers(b []byte) []byte {
	out := make([]byte, len(b))
	copy(out, b)
	for i := 0; i < len(out); {
		if !isDigit(out[i]) {
			i++
			continue
		}
		j := i
		for j < len(out) && isDigit(out[j]) {
			j++
		}
		n := j - i
		if n >= minIDRun {
			if n >= 17 && j < len(out) && (out[j] == 'X' || out[j] == 'x') {
				j++
			}
			for k := i; k < j; k++ {
				out[k] = '*'
			}
		}
		i = j
	}
	return out
}

// maskCut is MaskIDNumbers for a frame that was cut short (too long, or
// unterminated): the digits at its end may be the first digits of an ID
// number, so they are masked whatever their number.
func maskCut(b []byte) []byte {
	out := MaskIDNumbers(b)
	for i := len(out) - 1; i >= 0 && isDigit(out[i]); i-- {
		out[i] = '*'
	}
	return out
}

// redact masks ID numbers in a string meant for a log line or a stored
// reason, such as an error returned by another package.
func redact(s string) string { return string(MaskIDNumbers([]byte(s))) }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// MaskID shows an ID number the way a technician may see it: the first 3
// and last 4 characters kept, the rest '*' ("330***********123X"). A value
// shorter than 10 characters is masked whole. The result has as many
// characters as s.
func MaskID(s string) string {
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
