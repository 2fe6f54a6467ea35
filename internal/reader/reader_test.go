package reader

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.bug.st/serial"
)

const (
	plainID   = "33010219900101123X" // 17 digits and a check character
	plainID15 = "330102900101123"    // the old 15-digit form
	testID    = "11010519491231002X" // GB 11643's example, with a valid check character
)

func TestScanStoredStampedEncryptedAcked(t *testing.T) {
	sc := newScanner(t)
	clock := newFakeClock()
	h := startReader(t, testConfig(sc.path), Options{Now: clock.Now})
	h.waitConnected(t)

	// One frame in three pieces, CRLF-terminated.
	sc.write(t, "2021001,张")
	sc.write(t, "三,"+plainID[:9])
	sc.write(t, plainID[9:]+",2\r\n")
	if got := sc.readAck(t, 1); !bytes.Equal(got, []byte{0x07}) {
		t.Fatalf("ack = % x, want 07", got)
	}
	recs := h.store.Records()
	if len(recs) != 1 {
		t.Fatalf("stored %d records, want 1", len(recs))
	}
	got := recs[0]
	wantID, _ := fakeEncrypt(plainID)
	if got.Reader != "gate-1" || got.TermName != "东湖食堂 1 号机" || got.TermSn != "ZAFU-0001" ||
		got.Xgh != "2021001" || got.Name != "张三" || got.IDCard != wantID || got.UserType != "2" ||
		!got.ScanTime.Equal(clock.Now()) {
		t.Errorf("record = %+v", got)
	}
	if strings.Contains(got.IDCard, plainID) || strings.Contains(got.IDCard, plainID[:15]) {
		t.Errorf("stored idCard %q holds the plaintext", got.IDCard)
	}

	// No user type in the scan: the reader's user_type.
	sc.write(t, "2021002,李四,"+testID+",\n")
	sc.readAck(t, 1)
	recs = h.store.Records()
	if wantID, _ := fakeEncrypt(testID); len(recs) != 2 || recs[1].UserType != "9" || recs[1].IDCard != wantID {
		t.Fatalf("records = %+v, want the second with userType 9 and its idCard encrypted", recs)
	}
	if st := h.r.Stats(); st != (Stats{Read: 2, Stored: 2}) {
		t.Errorf("stats = %+v", st)
	}
}

func TestLineFramingOverPTY(t *testing.T) {
	sc := newScanner(t)
	cfg := testConfig(sc.path)
	h := startReader(t, cfg, Options{})
	h.waitConnected(t)

	// CR, LF, CRLF, empty lines and lone terminators; the last frame
	// arrives byte by byte.
	p := ",张三," + testID + ","
	sc.write(t, "a1"+p+"\rb2"+p+"\nc3"+p+"\r\n\r\n\n\r")
	for _, c := range "d4" + p + "\r\n" {
		sc.write(t, string(c))
	}
	if got := sc.readAck(t, 4); !bytes.Equal(got, []byte{7, 7, 7, 7}) {
		t.Fatalf("acks = % x, want 07 07 07 07", got)
	}
	sc.expectSilence(t, 50*time.Millisecond)
	var xghs []string
	for _, r := range h.store.Records() {
		xghs = append(xghs, r.Xgh)
	}
	if got, want := strings.Join(xghs, " "), "a1 b2 c3 d4"; got != want {
		t.Errorf("stored %q, want %q", got, want)
	}
}

func TestJSONDecoderOverPTY(t *testing.T) {
	sc := newScanner(t)
	cfg := testConfig(sc.path)
	cfg.Decoder = "json"
	cfg.Map = map[string]string{"学工号": "xgh", "姓名": "name", "sfz": "idCard", "type": "userType"}
	h := startReader(t, cfg, Options{})
	h.waitConnected(t)

	sc.write(t, `{"学工号": 2021003, "姓名": " 王五 ", "sfz": "`+plainID+`", "type": 1, "extra": [1]}`+"\n")
	if got := sc.readAck(t, 1); got[0] != 0x07 {
		t.Fatalf("ack = % x, want 07", got)
	}
	recs := h.store.Records()
	if len(recs) != 1 {
		t.Fatalf("stored %d records, want 1", len(recs))
	}
	wantID, _ := fakeEncrypt(plainID)
	if r := recs[0]; r.Xgh != "2021003" || r.Name != "王五" || r.IDCard != wantID || r.UserType != "1" {
		t.Errorf("record = %+v", r)
	}
}

func TestRejectionsOverPTY(t *testing.T) {
	sc := newScanner(t)
	cfg := testConfig(sc.path)
	cfg.MaxFrame = 40
	h := startReader(t, cfg, Options{})
	h.waitConnected(t)

	long := strings.Repeat("9", 30) + "," + plainID + ",x,y" // 52 bytes, cut inside the ID number
	tests := []struct {
		send       string
		wantRaw    string
		wantReason string
	}{
		{"2021001,张三\n", "*******,张三", "delimited: got 2 columns, want 4"},
		{",张三," + plainID + ",1\n", ",张三,******************,1", "frame has no xgh"}, // the X is masked too
		{"2021001,\xff\xfe," + plainID15 + ",1\r\n", "*******,\xff\xfe,***************,1", `name: not valid UTF-8 (a scanner that sends GBK needs encoding = "gbk")`},
		{"junk," + plainID + "0\n", "junk,******************0", "delimited: got 2 columns, want 4"},
		{long + "\r\n", strings.Repeat("*", 30) + ",*********", "frame longer than max_frame (40 bytes)"},
	}
	for _, tt := range tests {
		sc.write(t, tt.send)
	}
	// After the over-long frame the framer resyncs at the terminator.
	sc.write(t, "2021009,赵六,"+testID+",\n")
	want := bytes.Repeat([]byte{0x15, 0x0d}, len(tests))
	want = append(want, 0x07)
	if got := sc.readAck(t, len(want)); !bytes.Equal(got, want) {
		t.Fatalf("acks = % x, want % x", got, want)
	}

	rjs := h.store.Rejections()
	if len(rjs) != len(tests) {
		t.Fatalf("got %d rejections, want %d", len(rjs), len(tests))
	}
	for i, tt := range tests {
		rj := rjs[i]
		if string(rj.Raw) != tt.wantRaw || rj.Reason != tt.wantReason || rj.Reader != "gate-1" || rj.Time.IsZero() {
			t.Errorf("rejection %d = {Raw: %q, Reason: %q, Reader: %q}, want {%q, %q}", i, rj.Raw, rj.Reason, rj.Reader, tt.wantRaw, tt.wantReason)
		}
	}
	recs := h.store.Records()
	if len(recs) != 1 || recs[0].Xgh != "2021009" {
		t.Errorf("records = %+v, want only 2021009", recs)
	}
	if st := h.r.Stats(); st != (Stats{Read: 6, Rejected: 5, Stored: 1}) {
		t.Errorf("stats = %+v", st)
	}
	// One warning for the burst, the rest at debug.
	if n := h.logs.count("level=WARN msg=\"frame rejected\""); n != 1 {
		t.Errorf("%d rejection warnings, want 1:\n%s", n, h.logs)
	}
}

func TestDebounce(t *testing.T) {
	sc := newScanner(t)
	clock := newFakeClock()
	h := startReader(t, testConfig(sc.path), Options{Now: clock.Now, DedupeWindow: 3 * time.Second})
	h.waitConnected(t)

	scan := func(frame string) {
		t.Helper()
		sc.write(t, frame)
		if got := sc.readAck(t, 1); got[0] != 0x07 {
			t.Fatalf("ack = % x, want 07", got)
		}
	}
	scan("2021001,张三," + testID + ",\n")
	clock.Add(time.Second)
	scan("2021001,张三," + testID + ",\n") // repeat: acked, not stored
	scan("2021002,李四," + testID + ",\n") // someone else
	clock.Add(2500 * time.Millisecond)
	scan("2021001,张三," + testID + ",\n") // 2.5 s after the repeat: still one scan (the window slides)
	clock.Add(3 * time.Second)
	scan("2021001,张三," + testID + ",\n") // a new scan

	var xghs []string
	for _, r := range h.store.Records() {
		xghs = append(xghs, r.Xgh)
	}
	if got, want := strings.Join(xghs, " "), "2021001 2021002 2021001"; got != want {
		t.Errorf("stored %q, want %q", got, want)
	}
	if st := h.r.Stats(); st != (Stats{Read: 5, Debounced: 2, Stored: 3}) {
		t.Errorf("stats = %+v", st)
	}
}

func TestStoreFailureAcksFail(t *testing.T) {
	sc := newScanner(t)
	h := startReader(t, testConfig(sc.path), Options{DedupeWindow: time.Minute})
	h.waitConnected(t)

	h.store.failNext.Store(true)
	sc.write(t, "2021001,张三,"+plainID+",1\n")
	if got := sc.readAck(t, 2); !bytes.Equal(got, []byte{0x15, 0x0d}) {
		t.Fatalf("ack = % x, want 15 0d", got)
	}
	// The failed scan is not remembered: presenting the card again stores it.
	h.store.failNext.Store(false)
	sc.write(t, "2021001,张三,"+plainID+",1\n")
	if got := sc.readAck(t, 1); got[0] != 0x07 {
		t.Fatalf("ack = % x, want 07", got)
	}
	if st := h.r.Stats(); st != (Stats{Read: 2, Stored: 1, StoreFailed: 1}) {
		t.Errorf("stats = %+v", st)
	}
	if !strings.Contains(h.logs.String(), `msg="scan not stored" reader=gate-1 err="disk full"`) {
		t.Errorf("store failure not logged:\n%s", h.logs)
	}
}

func TestEncryptFailureAcksFail(t *testing.T) {
	sc := newScanner(t)
	encrypt := func(plain string) (string, error) {
		return "", errors.New("bad key for " + plain) // a careless error message
	}
	h := startReader(t, testConfig(sc.path), Options{Encrypt: encrypt})
	h.waitConnected(t)
	sc.write(t, "2021001,张三,"+plainID+",1\n")
	if got := sc.readAck(t, 2); !bytes.Equal(got, []byte{0x15, 0x0d}) {
		t.Fatalf("ack = % x, want 15 0d", got)
	}
	if n := len(h.store.Records()); n != 0 {
		t.Errorf("stored %d records, want 0", n)
	}
	if st := h.r.Stats(); st.StoreFailed != 1 {
		t.Errorf("stats = %+v, want StoreFailed 1", st)
	}
	// The cleanup checks that plainID never reached the log.
}

func TestReconnect(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "scanner")
	h := startReader(t, testConfig(link), Options{})

	// Missing at start: retried quietly.
	waitFor(t, "three open attempts", func() bool { return h.opens.Load() >= 3 })
	if h.r.Connected() {
		t.Fatal("connected to a missing port")
	}
	if n := h.logs.count("serial port unavailable"); n != 1 {
		t.Errorf("logged %d 'unavailable' lines over several retries, want 1:\n%s", n, h.logs)
	}

	// Plugged in.
	sc := newScanner(t)
	repoint(t, link, sc.path)
	h.waitConnected(t)
	sc.write(t, "2021001,张三,"+testID+",\n")
	sc.readAck(t, 1)

	// Unplugged mid-frame: the device and its path go away while half a
	// frame is read; that half must not be glued to the next frame.
	sc.write(t, "2021009,半截")
	time.Sleep(50 * time.Millisecond)
	os.Remove(link)
	sc.unplug()
	waitFor(t, "disconnect", func() bool { return !h.r.Connected() })
	before := h.opens.Load()
	waitFor(t, "three more open attempts", func() bool { return h.opens.Load() >= before+3 })

	// Plugged in again as another device behind the same path.
	sc2 := newScanner(t)
	repoint(t, link, sc2.path)
	h.waitConnected(t)
	sc2.write(t, "2021002,李四,"+testID+",\n")
	if got := sc2.readAck(t, 1); got[0] != 0x07 {
		t.Fatalf("ack = % x, want 07", got)
	}
	recs := h.store.Records()
	if len(recs) != 2 || recs[1].Xgh != "2021002" || recs[1].Name != "李四" {
		t.Fatalf("stored %+v; want 2021001 and 2021002, the half frame dropped", recs)
	}

	logs := h.logs.String()
	for msg, want := range map[string]int{
		"serial port unavailable":            1,
		"serial port connected":              2,
		"serial port disconnected":           1,
		"level=WARN msg=\"serial port still": 0,
	} {
		if n := h.logs.count(msg); n != want {
			t.Errorf("%d log lines with %q, want %d:\n%s", n, msg, want, logs)
		}
	}
}

// repoint makes link point at target, atomically.
func repoint(tb testing.TB, link, target string) {
	tb.Helper()
	tmp := link + ".new"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		tb.Fatal(err)
	}
}

func TestOpenErrorChangeIsLoggedOnce(t *testing.T) {
	errs := []error{os.ErrNotExist, os.ErrNotExist, os.ErrPermission, os.ErrPermission, os.ErrPermission}
	calls := 0
	open := func(string, *serial.Mode) (serial.Port, error) {
		err := errs[min(calls, len(errs)-1)]
		calls++
		return nil, err
	}
	h := startReader(t, testConfig("/dev/ttyNOPE"), Options{Open: open})
	waitFor(t, "six open attempts", func() bool { return h.opens.Load() >= 6 })
	h.stop()
	if n := h.logs.count("level=WARN"); n != 2 {
		t.Errorf("%d warnings, want 2 (missing, then permission denied):\n%s", n, h.logs)
	}
}

func TestRunStopsPromptly(t *testing.T) {
	sc := newScanner(t)
	h := startReader(t, testConfig(sc.path), Options{})
	h.waitConnected(t)
	took := h.stop() // also checks that no goroutine is left
	// Cancellation is noticed at the next read timeout (200ms); the margin
	// is for a loaded machine. Without a read timeout Run would never return.
	if took > 3*time.Second {
		t.Errorf("Run took %v to return after cancel\n%s", took, h.logs)
	}
	if h.r.Connected() {
		t.Error("still connected after Run returned")
	}
	// The port was closed: a new reader can open it (TIOCEXCL released).
	h2 := startReader(t, testConfig(sc.path), Options{})
	h2.waitConnected(t)
}

func TestRunTwice(t *testing.T) {
	h := startReader(t, testConfig("/nonexistent/tty"), Options{RetryInterval: time.Hour})
	waitFor(t, "first open", func() bool { return h.opens.Load() >= 1 })
	if err := h.r.Run(t.Context()); err == nil {
		t.Error("second concurrent Run returned nil, want an error")
	}
}

func TestIdleFramingOverPTY(t *testing.T) {
	sc := newScanner(t)
	cfg := testConfig(sc.path)
	cfg.Framing = "idle"
	cfg.IdleGap.Duration = 20 * time.Millisecond
	h := startReader(t, cfg, Options{})
	h.waitConnected(t)

	sc.write(t, "2021001,张")
	sc.write(t, "三,"+testID+",1") // well within the gap: the same frame
	if got := sc.readAck(t, 1); got[0] != 0x07 {
		t.Fatalf("ack = % x, want 07", got)
	}
	sc.write(t, "2021002,李四,"+testID+",")
	sc.readAck(t, 1)
	recs := h.store.Records()
	if len(recs) != 2 || recs[0].Name != "张三" || recs[1].Xgh != "2021002" {
		t.Errorf("records = %+v", recs)
	}
}

func TestSTXETXFramingOverPTY(t *testing.T) {
	sc := newScanner(t)
	cfg := testConfig(sc.path)
	cfg.Framing = "stx-etx"
	cfg.Decoder = "regex"
	cfg.Pattern = `^(?P<xgh>[0-9A-F]{10})[0-9A-F]{2};(?P<name>[^;]+);(?P<idCard>.+)$`
	h := startReader(t, cfg, Options{DedupeWindow: time.Second})
	h.waitConnected(t)

	// An RDM6300 repeats the frame while the card is held.
	sc.write(t, "\x020F002B5C1A62;张三;"+testID+"\x03\x02")
	sc.write(t, "0F002B5C1A62;张三;"+testID+"\x03")
	if got := sc.readAck(t, 2); !bytes.Equal(got, []byte{7, 7}) {
		t.Fatalf("acks = % x, want 07 07", got)
	}
	recs := h.store.Records()
	if len(recs) != 1 || recs[0].Xgh != "0F002B5C1A" {
		t.Errorf("records = %+v, want one with xgh 0F002B5C1A", recs)
	}
	if st := h.r.Stats(); st.Debounced != 1 {
		t.Errorf("stats = %+v, want Debounced 1", st)
	}
}

// The scans of one read share one commit; a rejected frame and a repeat
// among them are acknowledged in their place.
func TestBurstSharesCommitsAcksInOrder(t *testing.T) {
	sc := newScanner(t)
	clock := newFakeClock()
	h := startReader(t, testConfig(sc.path), Options{Now: clock.Now, DedupeWindow: 3 * time.Second})
	h.waitConnected(t)

	sc.write(t, "2021001,张三,"+testID+",\n2021002,李四,"+testID+",\n2021003,王五,"+testID+",\nnot a scan\n2021004,赵六,"+testID+",\n2021001,张三,"+testID+",\n2021005,钱七,"+testID+",\n")
	// ok ok ok fail(15 0d) ok ok(repeat) ok
	want := []byte{0x07, 0x07, 0x07, 0x15, 0x0d, 0x07, 0x07, 0x07}
	if got := sc.readAck(t, len(want)); !bytes.Equal(got, want) {
		t.Fatalf("acks = % x, want % x", got, want)
	}
	var xghs []string
	for _, r := range h.store.Records() {
		xghs = append(xghs, r.Xgh)
	}
	if got, want := strings.Join(xghs, " "), "2021001 2021002 2021003 2021004 2021005"; got != want {
		t.Errorf("stored %q, want %q", got, want)
	}
	// The pty may split the write; the three scans before the rejected
	// frame can only be fewer commits than scans when it does not.
	if b := h.store.Batches(); len(b) >= 5 {
		t.Errorf("EnqueueBatch sizes %v: every scan had a commit of its own", b)
	}
}
