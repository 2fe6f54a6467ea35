//go:build unix

package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"scanagent/internal/devserver"
	"scanagent/internal/redact"
)

// plug is a virtual scanner behind a fixed path (a symlink to a pty's
// device), so it can be unplugged (both ends closed, the link removed) and
// plugged in again as a new device at the same path.
type plug struct {
	t             *testing.T
	link          string
	master, slave *os.File
	acks          chan byte
}

func newPlug(t *testing.T) *plug {
	p := &plug{t: t, link: filepath.Join(t.TempDir(), "scanner")}
	p.in()
	t.Cleanup(p.out)
	return p
}

func (p *plug) in() {
	pm, s, err := pty.Open()
	if err != nil {
		p.t.Skipf("no pty: %v", err)
	}
	// pty.Open's master is blocking: a blocked Read would keep it open
	// past Close, and the agent would never see the hang-up. A
	// non-blocking duplicate is closed at once.
	fd, err := syscall.Dup(int(pm.Fd()))
	if err != nil {
		p.t.Fatal(err)
	}
	pm.Close()
	if err := syscall.SetNonblock(fd, true); err != nil {
		p.t.Fatal(err)
	}
	m := os.NewFile(uintptr(fd), "ptmx")
	p.master, p.slave = m, s
	tmp := p.link + ".new"
	os.Remove(tmp)
	if err := os.Symlink(s.Name(), tmp); err != nil {
		p.t.Fatal(err)
	}
	if err := os.Rename(tmp, p.link); err != nil {
		p.t.Fatal(err)
	}
	acks := make(chan byte, 16)
	p.acks = acks
	go func() {
		b := make([]byte, 16)
		for {
			n, err := m.Read(b)
			for _, c := range b[:n] {
				acks <- c
			}
			if err != nil {
				return
			}
		}
	}()
}

func (p *plug) out() {
	os.Remove(p.link)
	p.master.Close()
	p.slave.Close()
}

func (p *plug) scan(i int) bool {
	p.t.Helper()
	d := demoPerson(i)
	ok, err := presentCard(context.Background(), p.master, p.acks, d.xgh+","+d.name+","+d.id+","+d.userType+"\n")
	if err != nil {
		p.t.Fatalf("scan %d: %v", i, err)
	}
	return ok
}

func waitForLog(t *testing.T, what string, logs *syncBuffer, cond func() bool) {
	t.Helper()
	if err := waitUntil(context.Background(), 15*time.Second, cond); err != nil {
		t.Fatalf("%s: %v; log:\n%s", what, err, logs.String())
	}
}

// TestAlertsBlackBox runs the agent against the devserver: a reader
// unplugged for longer than reader_down sends one message naming the
// terminal; plugged back during a platform outage, the clearing is sent
// once the platform returns; scans are stored and delivered throughout, no
// alert carries an ID number and alerts fetch no token of their own.
func TestAlertsBlackBox(t *testing.T) {
	r := newRig(t, devserver.Options{})
	p := newPlug(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	body := validConfig(t, dataDir, r.url, p.link) + `
[alerts]
to = ["20121032"]
reader_down = "300ms"
resend = "24h"
`
	cfgPath := writeFile(t, "config.toml", body)
	logs := startAgent(t, cfgPath)
	connected := func() int { return strings.Count(logs.String(), "serial port connected") }
	waitForLog(t, "connected", logs, func() bool { return connected() == 1 })
	if !p.scan(0) {
		t.Fatal("scan 0 not stored")
	}
	waitForLog(t, "scan 0 delivered", logs, func() bool { return r.srv.Stats().Accepted == 1 })

	p.out() // unplugged
	waitForLog(t, "the reader-down alert", logs, func() bool { return len(r.srv.Messages()) == 1 })
	m := r.srv.Messages()[0]
	for _, want := range []string{"北门闸机", "GATE-0001", "gate-1", "读卡器断开", "处理："} {
		if !strings.Contains(m.Content, want) {
			t.Errorf("alert lacks %q: %s", want, m.Content)
		}
	}
	if m.Xgh != "20121032" || m.MessageType != "5" || m.AppID != "01" {
		t.Errorf("alert fields: %+v", m)
	}

	// The platform goes away; the reader comes back and scans go on.
	r.srv.SetMode(devserver.ModeDown)
	p.in()
	waitForLog(t, "reconnected", logs, func() bool { return connected() == 2 })
	if !p.scan(1) {
		t.Fatal("scan 1 during the outage not stored")
	}
	if n := len(r.srv.Messages()); n != 1 {
		t.Fatalf("%d messages while the platform is down", n)
	}
	r.srv.SetMode(devserver.ModeOK)
	waitForLog(t, "the clearing after the outage", logs, func() bool { return len(r.srv.Messages()) == 2 })
	waitForLog(t, "scan 1 delivered", logs, func() bool { return r.srv.Stats().Accepted == 2 })
	if !p.scan(2) {
		t.Fatal("scan 2 not stored")
	}
	waitForLog(t, "scan 2 delivered", logs, func() bool { return r.srv.Stats().Accepted == 3 })

	msgs := r.srv.Messages()
	if len(msgs) != 2 || !strings.Contains(msgs[1].Content, "【扫码终端恢复】") || !strings.Contains(msgs[1].Content, "GATE-0001") {
		t.Fatalf("messages: %+v", msgs)
	}
	for _, m := range msgs {
		for i := range 3 {
			if strings.Contains(m.Content, demoPerson(i).id) {
				t.Errorf("ID number in an alert: %s", m.Content)
			}
		}
		if redact.IDNumbers(m.Content) != m.Content {
			t.Errorf("something like an ID number in an alert: %s", m.Content)
		}
	}
	if n := r.srv.Stats().TokenFetches; n != 1 {
		t.Errorf("token fetches = %d, want 1: alerts use the agent's token", n)
	}
	if s := r.srv.Stats(); s.Accepted != 3 || len(r.srv.Records()) != 3 {
		t.Errorf("records: %+v", s)
	}
}

// `alerts test` sends one message to each person: through the running
// agent (its token), or with the stored token when it is stopped; neither
// fetches a second token.
func TestAlertsTestCommand(t *testing.T) {
	r := newRig(t, devserver.Options{})
	dataDir := filepath.Join(t.TempDir(), "data")
	base := validConfig(t, dataDir, r.url, r.slave.Name())
	off := writeFile(t, "off.toml", base)
	if code, _, errs := cli(t, off, "alerts", "test"); code != 1 || !strings.Contains(errs, "alerts are off") {
		t.Fatalf("alerts off: exit %d, %q", code, errs)
	}
	cfgPath := writeFile(t, "config.toml", base+"\n[alerts]\nto = [\"20121032\", \"20150007\"]\n")

	func() {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int, 1)
		logs := &syncBuffer{}
		go func() { done <- runMain(ctx, []string{"-c", cfgPath, "run"}, io.Discard, logs) }()
		defer func() { cancel(); <-done }()
		waitForLog(t, "the socket", logs, func() bool { return strings.Contains(logs.String(), "scanagent started") })
		code, out, errs := cli(t, cfgPath, "alerts", "test")
		if code != 0 || !strings.Contains(out, "running agent") || strings.Count(out, "✓") != 2 {
			t.Fatalf("live: exit %d\n%s\n%s", code, out, errs)
		}
	}()
	code, out, errs := cli(t, cfgPath, "alerts", "test", "--json")
	if code != 0 || !strings.Contains(out, `"sent": true`) {
		t.Fatalf("offline: exit %d\n%s\n%s", code, out, errs)
	}
	msgs := r.srv.Messages()
	if len(msgs) != 4 || !strings.Contains(msgs[0].Content, "测试") || msgs[0].Xgh != "20121032" || msgs[1].Xgh != "20150007" {
		t.Fatalf("messages: %+v", msgs)
	}
	if n := r.srv.Stats().TokenFetches; n != 1 {
		t.Errorf("token fetches = %d, want 1", n)
	}
	r.srv.SetMode(devserver.ModeDown)
	if code, out, _ := cli(t, cfgPath, "alerts", "test"); code != 1 || !strings.Contains(out, "✗ 20121032") {
		t.Fatalf("platform down: exit %d\n%s", code, out)
	}
}
