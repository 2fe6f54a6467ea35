package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"scanagent/internal/devserver"
	"scanagent/internal/queue"
)

// TestInvalidScansNeverReachThePlatform is the black-box test of
// validation: the agent, the devserver and a scanner on a real pty. Each
// frame the platform would refuse gets ack_fail, lands in rejected with a
// reason naming the field, and never reaches the platform; a valid one
// goes through. Then the reader is told encoding = "gbk" and the same GBK
// frame that was refused is delivered with the right name.
func TestInvalidScansNeverReachThePlatform(t *testing.T) {
	r := newRig(t, devserver.Options{})
	dataDir := filepath.Join(t.TempDir(), "data")
	id := demoPerson(0).id // a resident ID number with a valid check character
	badCheck := id[:17] + string("0123456789X"[(strings.IndexByte("0123456789X", id[17])+1)%11])
	const gbkName = "\xd5\xc5\xc8\xfd" // 张三 in GBK
	config := func(encoding string) string {
		body := validConfig(t, dataDir, r.url, r.slave.Name())
		return writeFile(t, "config.toml", strings.Replace(body, `ack_ok = "06"`, `ack_ok = "06"
ack_fail = "15"
id_check = "cn18"
user_types = { "1" = "学生", "2" = "教师" }
encoding = "`+encoding+`"`, 1))
	}

	invalid := []struct{ name, frame, reason string }{
		{"empty columns", ",,,", "frame has no xgh"},
		{"escape sequence", "\x1b[2J\x1b[H,,,", "xgh: holds control character U+001B; name: is empty; idCard: is empty; userType: is empty"},
		{"escape in a field", "2026001,张\x1b]0;x\x07三," + id + ",1", "name: holds control character U+001B"},
		{"invalid UTF-8", "2026001,\xff\xfe," + id + ",1", "name: not valid UTF-8"},
		{"GBK without encoding", "2026001," + gbkName + "," + id + ",1", `name: not valid UTF-8 (a scanner that sends GBK needs encoding = "gbk")`},
		{"bad check digit", "2026001,张三," + badCheck + ",1", `idCard: check character does not match the 17 digits (ISO 7064 MOD 11-2, id_check = "cn18")`},
		{"unknown userType", "2026001,张三," + id + ",9", "userType: code not in user_types"},
	}

	// Phase 1: UTF-8.
	acks := ackReader(r)
	cfgPath := config("utf-8")
	stop := runAgentOnPTY(t, cfgPath)
	for _, tt := range invalid {
		if got := scanOnce(t, r, acks, tt.frame); got != 0x15 {
			t.Fatalf("%s: ack %02x, want ack_fail 15", tt.name, got)
		}
	}
	if got := scanOnce(t, r, acks, "2026002,王芳,"+id+",2"); got != 0x06 {
		t.Fatalf("a valid scan: ack %02x, want ack_ok 06", got)
	}
	waitFor(t, func() bool { return r.srv.Stats().Accepted == 1 })
	stop()

	// Phase 2: the reader sends GBK, and now says so.
	cfgPath = config("gbk")
	stop = runAgentOnPTY(t, cfgPath)
	if got := scanOnce(t, r, acks, "2026001,"+gbkName+","+id+",1"); got != 0x06 {
		t.Fatalf("the GBK frame with encoding = \"gbk\": ack %02x, want ack_ok 06", got)
	}
	waitFor(t, func() bool { return r.srv.Stats().Accepted == 2 })
	stop()

	recs := r.srv.Records()
	if len(recs) != 2 || recs[0].Xgh != "2026002" || recs[0].Name != "王芳" || recs[0].UserType != "教师" ||
		recs[1].Xgh != "2026001" || recs[1].Name != "张三" || recs[1].UserType != "学生" || recs[1].IDCardPlain != id {
		t.Fatalf("the platform received %+v; want 王芳 (教师) and then 张三 (学生)", recs)
	}
	if s := r.srv.Stats(); s.ScanCalls != 2 || s.RefusedCalls != 0 {
		t.Fatalf("platform stats %+v: want exactly the two valid scans, nothing refused", s)
	}

	// Every invalid frame is in rejected, in order, with its reason.
	code, out, errs := runCLI(t, context.Background(), "-c", cfgPath, "queue", "list", "--rejected", "--json")
	var items []queue.Item
	if code != 0 || json.Unmarshal([]byte(out), &items) != nil {
		t.Fatalf("queue list --rejected --json: exit %d, %q", code, errs)
	}
	if len(items) != len(invalid) {
		t.Fatalf("%d rejections, want %d: %s", len(items), len(invalid), out)
	}
	for i, tt := range invalid {
		rj := items[i].Rejection
		if rj == nil || !strings.HasPrefix(rj.Reason, tt.reason) {
			t.Errorf("%s: rejection %+v, want a reason starting %q", tt.name, rj, tt.reason)
			continue
		}
		if bytes.Contains(rj.Raw, []byte(id[:6])) {
			t.Errorf("%s: the rejected frame keeps the ID number: %q", tt.name, rj.Raw)
		}
	}
}

// runAgentOnPTY runs `scanagent run` with the rig's pty as its port until
// stop is called (or the test ends).
func runAgentOnPTY(t *testing.T, cfgPath string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- runMain(ctx, []string{"-c", cfgPath, "run"}, &bytes.Buffer{}, logs) }()
	// Frames written before the agent opens the port (raw mode) would be
	// echoed back by the terminal line discipline.
	waitFor(t, func() bool { return strings.Contains(logs.String(), "serial port connected") })
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("run exited %d; log:\n%s", code, logs.String())
		}
	}
	t.Cleanup(stop)
	return stop
}

// ackReader returns the bytes written back to the scanner, read from the
// rig's pty master until the test ends (the rig closes it).
func ackReader(r *rig) <-chan byte {
	acks := make(chan byte, 64)
	go func() {
		b := make([]byte, 1)
		for {
			if _, err := r.master.Read(b); err != nil {
				return
			}
			acks <- b[0]
		}
	}()
	return acks
}

// scanOnce writes one frame (CRLF-terminated) and returns the first ack
// byte.
func scanOnce(t *testing.T, r *rig, acks <-chan byte, frame string) byte {
	t.Helper()
	if _, err := r.master.Write([]byte(frame + "\r\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-acks:
		return b
	case <-time.After(5 * time.Second):
		t.Fatalf("no ack for %q", frame)
		return 0
	}
}
