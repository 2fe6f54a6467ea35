package upload

import (
	"fmt"
	"strings"
)

// javaLayout turns a Java SimpleDateFormat pattern as the platform documents
// it ("yyyy-MM-dd HH:mm:ss") into a Go time layout. Letters it does not know
// are an error; text in single quotes is copied literally. SSS (milliseconds)
// must follow a "." or "," as in Go layouts.
func javaLayout(pattern string) (string, error) {
	table := []struct{ java, goLayout string }{
		{"yyyy", "2006"}, {"yy", "06"},
		{"MMM", "Jan"}, {"MM", "01"}, {"M", "1"},
		{"dd", "02"}, {"d", "2"},
		{"HH", "15"}, {"hh", "03"}, {"h", "3"},
		{"mm", "04"}, {"m", "4"},
		{"ss", "05"}, {"s", "5"},
		{"SSS", "000"}, {"a", "PM"},
		{"XXX", "-07:00"}, {"Z", "-0700"},
	}
	var b strings.Builder
	for i := 0; i < len(pattern); {
		c := pattern[i]
		if c == '\'' {
			j := strings.IndexByte(pattern[i+1:], '\'')
			if j < 0 {
				return "", fmt.Errorf("date_format %q: unclosed quote", pattern)
			}
			b.WriteString(pattern[i+1 : i+1+j])
			i += j + 2
			continue
		}
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') {
			b.WriteByte(c)
			i++
			continue
		}
		matched := false
		for _, e := range table {
			if strings.HasPrefix(pattern[i:], e.java) {
				b.WriteString(e.goLayout)
				i += len(e.java)
				matched = true
				break
			}
		}
		if !matched {
			return "", fmt.Errorf("date_format %q: pattern letter %q is not supported (use yyyy MM dd HH mm ss SSS)", pattern, string(c))
		}
	}
	return b.String(), nil
}
