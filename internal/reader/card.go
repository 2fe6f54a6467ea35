package reader

// The card decoder: the frame is a card number, the person comes from the
// roster CSV.

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"scanagent/internal/redact"
)

// card_format values.
const (
	cardHex   = "hex"
	cardDec10 = "dec10"
	cardW26   = "w26"
	cardAuto  = "auto"
)

const (
	// rosterCheckEvery bounds how often the roster file is stat'ed: a
	// burst of frames costs one stat, not one each.
	rosterCheckEvery = time.Second
	// maxRosterSize refuses a roster file that is not a roster.
	maxRosterSize = 64 << 20
	maxHexDigits  = 16 // a card number is read into 64 bits
)

// Log attribute keys of the card decoder.
const (
	keyRoster = "roster"
	keyPeople = "people"
)

// cardLevel is how much of a card's number a printed form carries.
type cardLevel int

const (
	levelW26   cardLevel = iota // Wiegand 26: facility byte and 16-bit number (24 bits)
	levelDec10                  // 8H10D: the last 4 bytes (32 bits)
	levelHex                    // the whole number as hex digits (up to 64 bits)
	numLevels
)

func (l cardLevel) String() string {
	return [...]string{cardW26, cardDec10, cardHex}[l]
}

// cardNumber is a parsed card number and the form it was printed in.
type cardNumber struct {
	v     uint64
	level cardLevel
}

// key is the canonical form of c at level l (l ≤ c.level): lower-case hex
// without leading zeros, 10 decimal digits, or "FFF,NNNNN".
func (c cardNumber) key(l cardLevel) string {
	switch l {
	case levelW26:
		return fmt.Sprintf("%03d,%05d", (c.v>>16)&0xff, c.v&0xffff)
	case levelDec10:
		return fmt.Sprintf("%010d", c.v&0xffffffff)
	default:
		return strconv.FormatUint(c.v, 16)
	}
}

// Reasons for refusing a card number. They never quote the number: a reason
// is stored and logged, and the rejection keeps the raw frame anyway.
var (
	errCardEmpty     = errors.New("card: empty card number")
	errCardSyntax    = errors.New("card: not a card number (hex digits, 10 decimal digits or W26 \"213,02000\")")
	errCardTooLong   = errors.New("card: card number longer than 16 hex digits")
	errCardDecRange  = errors.New("card: decimal card number larger than 32 bits (8H10D has 10 digits)")
	errCardW26Range  = errors.New("card: W26 card number out of range (facility 0-255, number 0-65535)")
	errCardChecksum  = errors.New("card: RDM6300 checksum mismatch")
	errCardNotFound  = errors.New("card not in roster")
	errCardAmbiguous = errors.New("card matches several roster entries (card_format = \"auto\")")
	errNoRoster      = errors.New("card: no roster loaded (see the log)")
)

// parseCard reads a card number printed in any of the forms readers use:
// "FFF,NNNNN" (W26), decimal digits (8H10D) or hex digits. A string of
// decimal digits only is ambiguous: it is read as decimal under dec10 and
// w26, as hex under hex, and under auto as decimal when it has exactly 10
// digits (8H10D always prints 10) and as hex otherwise.
func parseCard(s, format string) (cardNumber, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return cardNumber{}, errCardEmpty
	}
	if fac, num, ok := strings.Cut(s, ","); ok {
		fac, num = strings.TrimSpace(fac), strings.TrimSpace(num)
		if !allDigits(fac) || !allDigits(num) || len(fac) > 3 || len(num) > 5 {
			return cardNumber{}, errCardSyntax
		}
		f, _ := strconv.ParseUint(fac, 10, 64)
		n, _ := strconv.ParseUint(num, 10, 64)
		if f > 0xff || n > 0xffff {
			return cardNumber{}, errCardW26Range
		}
		return cardNumber{v: f<<16 | n, level: levelW26}, nil
	}
	if allDigits(s) && (format == cardDec10 || format == cardW26 || (format == cardAuto && len(s) == 10)) {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil || v > math.MaxUint32 {
			return cardNumber{}, errCardDecRange
		}
		return cardNumber{v: v, level: levelDec10}, nil
	}
	if !allHex(s) {
		return cardNumber{}, errCardSyntax
	}
	if t := strings.TrimLeft(s, "0"); len(t) > maxHexDigits {
		return cardNumber{}, errCardTooLong
	} else if t == "" {
		s = "0"
	} else {
		s = t
	}
	v, _ := strconv.ParseUint(s, 16, 64)
	return cardNumber{v: v, level: levelHex}, nil
}

// formatLevel is the level card_format compares at; auto has none.
func formatLevel(format string) (cardLevel, bool) {
	switch format {
	case cardHex:
		return levelHex, true
	case cardDec10:
		return levelDec10, true
	case cardW26:
		return levelW26, true
	}
	return 0, false
}

// cardKey normalises a card number for card_format: the key it is looked up
// by, and the level of that key. A number printed in a form that carries
// less than card_format compares (W26 under dec10) is refused.
func cardKey(s, format string) (string, cardLevel, error) {
	c, err := parseCard(s, format)
	if err != nil {
		return "", 0, err
	}
	want, fixed := formatLevel(format)
	if !fixed {
		return c.key(c.level), c.level, nil
	}
	if c.level < want {
		return "", 0, fmt.Errorf("card: a %s card number carries less than card_format = %q compares; set card_format = %q", c.level, format, c.level)
	}
	return c.key(want), want, nil
}

// stripRDM6300 checks an RDM6300 frame body, 10 hex digits and a 2-digit
// checksum (the XOR of the five bytes), and returns the 10 digits. Other
// bodies are returned unchanged.
func stripRDM6300(s string) (string, error) {
	s = strings.TrimSpace(s)
	if len(s) != 12 || !allHex(s) {
		return s, nil
	}
	var b [6]byte
	for i := range b {
		v, _ := strconv.ParseUint(s[2*i:2*i+2], 16, 8)
		b[i] = byte(v)
	}
	if b[0]^b[1]^b[2]^b[3]^b[4] != b[5] {
		return "", errCardChecksum
	}
	return s[:10], nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}

func allHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20 // lower case for letters
		if !isDigit(s[i]) && (c < 'a' || c > 'f') {
			return false
		}
	}
	return s != ""
}

// person is one roster row. idCard is plaintext: it is encrypted before it
// is stored and never logged.
type person struct {
	xgh, name, idCard, userType string
}

// roster is a loaded roster file, indexed by card key at each level.
type roster struct {
	people []person
	// index[level][key] is an index into people, or -1 when several people
	// share the key (only under card_format = "auto").
	index [numLevels]map[string]int
}

// parseRoster reads the roster CSV: card,xgh[,name[,idCard[,userType]]],
// UTF-8 with or without a BOM, with an optional header row (a first row
// whose first column holds no digit). Every row must be well formed; errors
// name the line and never quote the idCard column.
func parseRoster(data []byte, format string) (*roster, error) {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	ro := &roster{}
	for l := range ro.index {
		ro.index[l] = map[string]int{}
	}
	want, fixed := formatLevel(format)
	lineOf := map[int]int{} // index in people → line, for duplicate errors
	first := true
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		line, _ := r.FieldPos(0)
		if first {
			first = false
			if !strings.ContainsAny(rec[0], "0123456789") {
				continue // header
			}
		}
		if len(rec) < 2 || len(rec) > 5 {
			return nil, fmt.Errorf("line %d: %d columns, want card,xgh,name,idCard,userType (the last three may be left out)", line, len(rec))
		}
		rec = append(rec, "", "", "")[:5]
		p := person{
			xgh:      strings.TrimSpace(rec[1]),
			name:     strings.TrimSpace(rec[2]),
			idCard:   strings.TrimSpace(rec[3]),
			userType: strings.TrimSpace(rec[4]),
		}
		if p.xgh == "" {
			return nil, fmt.Errorf("line %d: xgh (column 2) is empty", line)
		}
		c, err := parseCard(rec[0], format)
		if err != nil {
			return nil, fmt.Errorf("line %d: %q: %s", line, redact.IDNumbers(strings.TrimSpace(rec[0])), strings.TrimPrefix(err.Error(), "card: "))
		}
		i := len(ro.people)
		ro.people = append(ro.people, p)
		lineOf[i] = line
		if fixed {
			if c.level < want {
				return nil, fmt.Errorf("line %d: a %s card number carries less than card_format = %q compares; set card_format = %q", line, c.level, format, c.level)
			}
			k := c.key(want)
			if j, dup := ro.index[want][k]; dup && ro.people[j].xgh != p.xgh {
				return nil, fmt.Errorf("lines %d and %d: card %s (as %s) belongs to two people", lineOf[j], line, k, want)
			}
			ro.index[want][k] = i
			continue
		}
		for l := levelW26; l <= c.level; l++ {
			k := c.key(l)
			if j, dup := ro.index[l][k]; dup && (j < 0 || ro.people[j].xgh != p.xgh) {
				ro.index[l][k] = -1
				continue
			}
			ro.index[l][k] = i
		}
	}
	return ro, nil
}

// fileStamp identifies a version of the roster file.
type fileStamp struct {
	mod  time.Time
	size int64
	err  string // why it could not be stat'ed
}

// cardDecoder looks card numbers up in the roster, which it reloads when
// the file changes. It is used by one goroutine.
type cardDecoder struct {
	path   string
	format string
	rdm    bool // framing = "stx-etx": 12 hex digits are an RDM6300 frame
	log    *slog.Logger
	now    func() time.Time
	every  time.Duration

	cur     *roster   // nil until a load succeeds
	seen    fileStamp // the version last loaded or tried
	checked time.Time // when the file was last stat'ed
}

func newCardDecoder(path, format string, rdm bool, log *slog.Logger, now func() time.Time) (*cardDecoder, error) {
	if path == "" {
		return nil, errors.New(`roster is empty: decoder "card" needs a roster CSV (card,xgh,name,idCard,userType)`)
	}
	switch format {
	case cardHex, cardDec10, cardW26, cardAuto:
	default:
		return nil, fmt.Errorf("card_format = %q: want \"hex\", \"dec10\", \"w26\" or \"auto\"", format)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	d := &cardDecoder{path: path, format: format, rdm: rdm, log: log.With(keyRoster, path), now: now, every: rosterCheckEvery}
	// A roster that cannot be loaded at start does not stop the agent (the
	// other readers go on): cards are rejected until the file is fixed.
	d.checked = now()
	d.reload(d.stat())
	return d, nil
}

func (d *cardDecoder) stat() fileStamp {
	st, err := os.Stat(d.path)
	if err != nil {
		return fileStamp{err: err.Error()}
	}
	return fileStamp{mod: st.ModTime(), size: st.Size()}
}

// refresh reloads the roster if the file changed, looking at most once per
// d.every.
func (d *cardDecoder) refresh() {
	now := d.now()
	if since := now.Sub(d.checked); since >= 0 && since < d.every {
		return
	}
	d.checked = now
	if st := d.stat(); st != d.seen {
		d.reload(st)
	}
}

// reload loads the file whose stamp is st; on failure the previous roster
// is kept. One log line per version of the file.
func (d *cardDecoder) reload(st fileStamp) {
	d.seen = st
	ro, err := d.load(st)
	switch {
	case err != nil && d.cur == nil:
		d.log.Error("roster not loaded: cards are rejected until it is fixed", keyErr, redact.IDNumbers(err.Error()))
	case err != nil:
		d.log.Error("roster not reloaded: keeping the previous roster", keyErr, redact.IDNumbers(err.Error()), keyPeople, len(d.cur.people))
	default:
		d.cur = ro
		d.log.Info("roster loaded", keyPeople, len(ro.people))
	}
}

func (d *cardDecoder) load(st fileStamp) (*roster, error) {
	if st.err != "" {
		return nil, errors.New(st.err)
	}
	f, err := os.Open(d.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxRosterSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxRosterSize {
		return nil, fmt.Errorf("larger than %d MB", maxRosterSize>>20)
	}
	return parseRoster(data, d.format)
}

func (d *cardDecoder) Decode(frame []byte) (scan, error) {
	d.refresh()
	s := string(frame)
	if d.rdm {
		var err error
		if s, err = stripRDM6300(s); err != nil {
			return scan{}, err
		}
	}
	key, level, err := cardKey(s, d.format)
	if err != nil {
		return scan{}, err
	}
	if d.cur == nil {
		return scan{}, errNoRoster
	}
	i, ok := d.cur.index[level][key]
	switch {
	case !ok:
		return scan{}, errCardNotFound
	case i < 0:
		return scan{}, errCardAmbiguous
	}
	p := d.cur.people[i]
	return scan{Card: key, Xgh: p.xgh, Name: p.name, IDCard: p.idCard, UserType: p.userType}, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
