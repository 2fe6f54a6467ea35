package reader

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"scanagent/internal/config"
)

// The same card in the forms readers print it: 0x0F002B5C1A. Its last 4
// bytes 0x002B5C1A are 2841626 (8H10D); its last 3, facility 0x2B = 43 and
// number 0x5C1A = 23578 (W26).
const (
	sampleHex = "0F002B5C1A"
	sampleDec = "0002841626"
	sampleW26 = "043,23578"
	sampleRDM = "0F002B5C1A62" // with the RDM6300 checksum 0F^00^2B^5C^1A = 62
)

func TestCardKey(t *testing.T) {
	tests := []struct {
		in, format string
		want       string // "" when an error is expected
		wantErr    string
	}{
		{"0012AB34", cardHex, "12ab34", ""},
		{"12ab34", cardHex, "12ab34", ""},
		{" 0012ab34 ", cardHex, "12ab34", ""},
		{sampleHex, cardHex, "f002b5c1a", ""},
		{"0002841626", cardHex, "2841626", ""}, // digits only: hex under hex
		{"0000", cardHex, "0", ""},
		{"FFFFFFFFFFFFFFFF", cardHex, "ffffffffffffffff", ""},
		{"00000000000000000000001", cardHex, "1", ""},
		{"1FFFFFFFFFFFFFFFF", cardHex, "", "longer than 16 hex digits"},
		{sampleW26, cardHex, "", `set card_format = "w26"`},
		{"12G4", cardHex, "", "not a card number"},
		{"", cardHex, "", "empty card number"},

		{sampleDec, cardDec10, sampleDec, ""},
		{"2841626", cardDec10, sampleDec, ""},
		{sampleHex, cardDec10, sampleDec, ""},
		{"0f002b5c1a", cardDec10, sampleDec, ""},
		{"4294967295", cardDec10, "4294967295", ""},
		{"4294967296", cardDec10, "", "larger than 32 bits"},
		{sampleW26, cardDec10, "", `a w26 card number carries less than card_format = "dec10" compares`},

		{sampleW26, cardW26, sampleW26, ""},
		{"43,23578", cardW26, sampleW26, ""},
		{" 43 , 23578 ", cardW26, sampleW26, ""},
		{sampleHex, cardW26, sampleW26, ""},
		{sampleDec, cardW26, sampleW26, ""},
		{"213,02000", cardW26, "213,02000", ""},
		{"256,1", cardW26, "", "out of range"},
		{"1,65536", cardW26, "", "out of range"},
		{"1,2,3", cardW26, "", "not a card number"},
		{",1", cardW26, "", "not a card number"},

		{sampleDec, cardAuto, sampleDec, ""},
		{sampleHex, cardAuto, "f002b5c1a", ""},
		{sampleW26, cardAuto, sampleW26, ""},
		{"00123456", cardAuto, "123456", ""}, // not 10 digits: hex
	}
	for _, tt := range tests {
		t.Run(tt.format+"/"+tt.in, func(t *testing.T) {
			got, _, err := cardKey(tt.in, tt.format)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %q, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestStripRDM6300(t *testing.T) {
	for _, tt := range []struct{ in, want, wantErr string }{
		{sampleRDM, sampleHex, ""},
		{strings.ToLower(sampleRDM), strings.ToLower(sampleHex), ""},
		{"0F002B5C1A63", "", "checksum mismatch"},
		{sampleHex, sampleHex, ""},           // no checksum: left alone
		{"0F002B5C1A6G", "0F002B5C1A6G", ""}, // not hex: the decoder says so
	} {
		got, err := stripRDM6300(tt.in)
		if (err != nil) != (tt.wantErr != "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) || got != tt.want {
			t.Errorf("stripRDM6300(%q) = %q, %v; want %q, %q", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseRoster(t *testing.T) {
	tests := []struct {
		name, csv, format string
		lookups           map[string]string // card as printed → xgh ("" = not found, "?" = ambiguous)
		wantErr           string
	}{
		{"bom and header", "\ufeffcard,xgh,name,idCard,userType\r\n0012AB34,2021001,张三," + plainID + ",1\r\n", cardHex,
			map[string]string{"12ab34": "2021001", "0012ab34": "2021001", "12AB35": ""}, ""},
		{"no header, short rows", "12ab34,2021001\n\n0F002B5C1A,2021002,李四\n", cardHex,
			map[string]string{"0012AB34": "2021001", sampleHex: "2021002"}, ""},
		{"chinese header", "卡号,学工号,姓名,身份证号,类型\n12ab34,2021001,,,\n", cardHex, map[string]string{"12ab34": "2021001"}, ""},
		{"quoted", "\"12ab34\",\"2021001\",\"张, 三\"\n", cardHex, map[string]string{"12ab34": "2021001"}, ""},
		{"roster in hex, reader prints 8H10D", sampleHex + ",2021001\n", cardDec10, map[string]string{sampleDec: "2021001", "2841626": "2021001"}, ""},
		{"roster in 8H10D, reader prints W26", sampleDec + ",2021001\n", cardW26, map[string]string{sampleW26: "2021001", sampleHex: "2021001"}, ""},
		{"w26 quoted", "\"43,23578\",2021001\n", cardW26, map[string]string{sampleW26: "2021001", sampleHex: "2021001"}, ""},
		{"same person twice", "12ab34,2021001\n0012AB34,2021001\n", cardHex, map[string]string{"12ab34": "2021001"}, ""},
		{"auto", sampleHex + ",2021001\n1,2021002\n0000000001,2021003\n", cardAuto, map[string]string{
			sampleHex: "2021001", sampleDec: "2021001", sampleW26: "2021001", // a hex entry answers every form
			"1": "2021002", "0000000001": "?", "000,00001": "?", // hex 1 and decimal 1 meet below hex
		}, ""},

		{"two people one card", "12ab34,2021001\n0012AB34,2021002\n", cardHex, nil, "lines 1 and 2: card 12ab34 (as hex) belongs to two people"},
		{"two people one card after reduction", "1002B5C1A,2021001\n" + sampleHex + ",2021002\n", cardDec10, nil, "lines 1 and 2"},
		{"one column", "12ab34\n", cardHex, nil, "line 1: 1 columns"},
		{"six columns", "12ab34,1,2,3,4,5\n", cardHex, nil, "line 1: 6 columns"},
		{"no xgh", "card,xgh\n12ab34, \n", cardHex, nil, "line 2: xgh (column 2) is empty"},
		{"bad card", "12ab34,1\n12xx34,2\n", cardHex, nil, `line 2: "12xx34": not a card number`},
		{"w26 under hex", "\"043,23578\",1\n", cardHex, nil, "line 1: a w26 card number"},
		{"id number in the card column", plainID + ",2021001\n", cardHex, nil, "line 1: \"******************\""},
		{"broken quote", "12ab34,\"2021001\n", cardHex, nil, "extraneous or missing \" in quoted-field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ro, err := parseRoster([]byte(tt.csv), tt.format)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), plainID) {
					t.Fatalf("error %q quotes an ID number", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for card, want := range tt.lookups {
				key, level, err := cardKey(card, tt.format)
				if err != nil {
					t.Fatalf("cardKey(%q): %v", card, err)
				}
				got := ""
				if i, ok := ro.index[level][key]; ok && i < 0 {
					got = "?"
				} else if ok {
					got = ro.people[i].xgh
				}
				if got != want {
					t.Errorf("lookup %q: got xgh %q, want %q", card, got, want)
				}
			}
		})
	}
}

// writeRoster writes the roster file and sets its modification time.
func writeRoster(tb testing.TB, path, body string, mod time.Time) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chtimes(path, mod, mod); err != nil {
		tb.Fatal(err)
	}
}

func cardConfig(port, roster string) config.Reader {
	cfg := testConfig(port)
	cfg.Decoder = "card"
	cfg.Roster = roster
	return cfg
}

func TestCardDecoderOverPTY(t *testing.T) {
	sc := newScanner(t)
	roster := filepath.Join(t.TempDir(), "roster.csv")
	writeRoster(t, roster, "\ufeffcard,xgh,name,idCard,userType\n"+
		"0012AB34,2021001,张三,"+plainID+",1\n"+
		sampleHex+",2021002,李四,"+testID+",2\n", time.Now())
	cfg := cardConfig(sc.path, roster)
	cfg.CardFormat = cardDec10
	h := startReader(t, cfg, Options{})
	h.waitConnected(t)

	// dec10 compares the last 4 bytes: the roster's hex and the reader's
	// 8H10D meet; case and leading zeros do not matter.
	for _, frame := range []string{"0001223476", "12ab34", "0002841626", "f002b5c1a", "0000000001", "043,23578"} {
		sc.write(t, frame+"\r\n")
	}
	want := []byte{7, 7, 7, 7, 0x15, 0x0d, 0x15, 0x0d}
	if got := sc.readAck(t, len(want)); !bytes.Equal(got, want) {
		t.Fatalf("acks = % x, want % x", got, want)
	}
	recs := h.store.Records()
	var xghs []string
	for _, r := range recs {
		xghs = append(xghs, r.Xgh)
	}
	if got, want := strings.Join(xghs, " "), "2021001 2021001 2021002 2021002"; got != want {
		t.Fatalf("stored %q, want %q", got, want)
	}
	wantID, _ := fakeEncrypt(plainID)
	if r := recs[0]; r.Name != "张三" || r.IDCard != wantID || r.UserType != "1" {
		t.Errorf("record = %+v", r)
	}
	rjs := h.store.Rejections()
	if len(rjs) != 2 || rjs[0].Reason != "card not in roster" || string(rjs[0].Raw) != "**********" ||
		!strings.Contains(rjs[1].Reason, `set card_format = "w26"`) {
		t.Errorf("rejections = %+v", rjs)
	}
	if strings.Contains(h.logs.String(), plainID[:10]) {
		t.Errorf("the roster's idCard column reached the log:\n%s", h.logs)
	}
	if n := h.logs.count(`msg="roster loaded"`); n != 1 {
		t.Errorf("%d 'roster loaded' lines, want 1:\n%s", n, h.logs)
	}
}

func TestCardDecoderRDM6300OverPTY(t *testing.T) {
	sc := newScanner(t)
	roster := filepath.Join(t.TempDir(), "roster.csv")
	writeRoster(t, roster, strings.ToLower(sampleHex)+",2021002,李四,"+testID+"\n", time.Now())
	cfg := cardConfig(sc.path, roster)
	cfg.Framing = "stx-etx"
	h := startReader(t, cfg, Options{DedupeWindow: time.Minute})
	h.waitConnected(t)

	// Held card: repeated frames, noise between them, one with a bad
	// checksum.
	sc.write(t, "\x02"+sampleRDM+"\x03\x02"+sampleRDM[:5])
	sc.write(t, sampleRDM[5:]+"\x03\xff\x00\x02"+"0F002B5C1A63"+"\x03")
	want := []byte{7, 7, 0x15, 0x0d}
	if got := sc.readAck(t, len(want)); !bytes.Equal(got, want) {
		t.Fatalf("acks = % x, want % x", got, want)
	}
	recs := h.store.Records()
	if len(recs) != 1 || recs[0].Xgh != "2021002" || recs[0].Name != "李四" {
		t.Errorf("records = %+v, want one for 2021002", recs)
	}
	rjs := h.store.Rejections()
	if len(rjs) != 1 || rjs[0].Reason != "card: RDM6300 checksum mismatch" {
		t.Errorf("rejections = %+v", rjs)
	}
	if st := h.r.Stats(); st != (Stats{Read: 3, Rejected: 1, Debounced: 1, Stored: 1}) {
		t.Errorf("stats = %+v", st)
	}
}

func TestRosterReloadOverPTY(t *testing.T) {
	sc := newScanner(t)
	clock := newFakeClock()
	roster := filepath.Join(t.TempDir(), "roster.csv")
	mod := time.Now().Add(-time.Hour)
	writeRoster(t, roster, "12ab34,2021001,张三,"+testID+"\n", mod)
	h := startReader(t, cardConfig(sc.path, roster), Options{Now: clock.Now})
	h.waitConnected(t)

	scan := func(wantAck byte) string {
		t.Helper()
		sc.write(t, "0012AB34\n")
		got := sc.readAck(t, 1)
		if got[0] != wantAck {
			t.Fatalf("ack = % x, want %02x", got, wantAck)
		}
		if wantAck == 0x15 {
			sc.readAck(t, 1)
			return ""
		}
		recs := h.store.Records()
		return recs[len(recs)-1].Xgh
	}
	if got := scan(7); got != "2021001" {
		t.Fatalf("first scan: xgh %q, want 2021001", got)
	}

	// The card changes hands. Within a second of the last look the file is
	// not looked at again; after it, the new roster is used.
	writeRoster(t, roster, "card,xgh,name,idCard\n12ab34,2021002,李四,"+testID+"\n", mod.Add(time.Second))
	clock.Add(500 * time.Millisecond)
	if got := scan(7); got != "2021001" {
		t.Fatalf("scan within a second: xgh %q, want 2021001 (not reloaded yet)", got)
	}
	clock.Add(time.Second)
	if got := scan(7); got != "2021002" {
		t.Fatalf("scan after the change: xgh %q, want 2021002", got)
	}

	// A broken roster: the previous one is kept, and said so once.
	writeRoster(t, roster, "12ab34,2021003\n12ab34,2021004\n", mod.Add(2*time.Second))
	for range 3 {
		clock.Add(2 * time.Second)
		if got := scan(7); got != "2021002" {
			t.Fatalf("scan with a broken roster: xgh %q, want 2021002 (the previous roster)", got)
		}
	}
	if n := h.logs.count("roster not reloaded: keeping the previous roster"); n != 1 {
		t.Errorf("%d 'not reloaded' lines, want 1:\n%s", n, h.logs)
	}
	if !strings.Contains(h.logs.String(), "lines 1 and 2: card 12ab34 (as hex) belongs to two people") {
		t.Errorf("the log does not say why:\n%s", h.logs)
	}

	// Removed: still the previous roster. Fixed: used again.
	os.Remove(roster)
	clock.Add(2 * time.Second)
	if got := scan(7); got != "2021002" {
		t.Fatalf("scan with the roster gone: xgh %q, want 2021002", got)
	}
	writeRoster(t, roster, "12ab34,2021005,钱七,"+testID+"\n", mod.Add(3*time.Second))
	clock.Add(2 * time.Second)
	if got := scan(7); got != "2021005" {
		t.Fatalf("scan after the fix: xgh %q, want 2021005", got)
	}
	if n := h.logs.count(`msg="roster loaded"`); n != 3 {
		t.Errorf("%d 'roster loaded' lines, want 3:\n%s", n, h.logs)
	}
}

func TestRosterBrokenAtStart(t *testing.T) {
	sc := newScanner(t)
	clock := newFakeClock()
	roster := filepath.Join(t.TempDir(), "roster.csv")
	writeRoster(t, roster, "12ab34\n", time.Now().Add(-time.Hour))
	h := startReader(t, cardConfig(sc.path, roster), Options{Now: clock.Now})
	h.waitConnected(t)

	// The reader runs; cards are rejected until the roster is fixed.
	sc.write(t, "12ab34\n")
	if got := sc.readAck(t, 2); !bytes.Equal(got, []byte{0x15, 0x0d}) {
		t.Fatalf("ack = % x, want 15 0d", got)
	}
	if rjs := h.store.Rejections(); len(rjs) != 1 || rjs[0].Reason != "card: no roster loaded (see the log)" {
		t.Fatalf("rejections = %+v", rjs)
	}
	if n := h.logs.count("roster not loaded: cards are rejected until it is fixed"); n != 1 {
		t.Errorf("%d 'not loaded' lines, want 1:\n%s", n, h.logs)
	}
	writeRoster(t, roster, "12ab34,2021001,张三,"+testID+"\n", time.Now())
	clock.Add(2 * time.Second)
	sc.write(t, "12ab34\n")
	if got := sc.readAck(t, 1); got[0] != 7 {
		t.Fatalf("ack = % x, want 07", got)
	}
}

// ReloadRoster (SIGHUP) re-reads the roster even when its file looks the
// same (same size and time, as a copy with preserved times would be).
func TestReloadRosterOverPTY(t *testing.T) {
	sc := newScanner(t)
	roster := filepath.Join(t.TempDir(), "roster.csv")
	stamp := time.Now().Add(-time.Hour)
	writeRoster(t, roster, "0012AB34,2021001,张三,"+plainID+",1\n", stamp)
	h := startReader(t, cardConfig(sc.path, roster), Options{})
	h.waitConnected(t)
	writeRoster(t, roster, "0012AB34,2021009,王五,"+plainID+",1\n", stamp) // same size, same time
	sc.write(t, "0012ab34\r\n")
	sc.readAck(t, 1)
	h.r.ReloadRoster()
	sc.write(t, "0012ab34\r\n")
	sc.readAck(t, 1)
	recs := h.store.Records()
	if len(recs) != 2 || recs[0].Xgh != "2021001" || recs[1].Xgh != "2021009" {
		t.Fatalf("stored %+v; want the old roster's person, then after ReloadRoster the new one's", recs)
	}
}
