//go:build unix

package reader

import (
	"errors"
	"io"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// scanner is the device end of a pseudo-terminal: the test writes frames to
// the master and reads ack bytes from it; the reader opens the slave path
// through go.bug.st/serial.
type scanner struct {
	master *os.File // non-blocking, so read deadlines work and Close wakes reads
	slave  *os.File // held open by the test until unplug
	path   string
}

func newScanner(tb testing.TB) *scanner {
	tb.Helper()
	m, s, err := pty.Open()
	if err != nil {
		tb.Skipf("no pseudo-terminal: %v", err)
	}
	// pty.Open's master is in blocking mode (Fd() was called on it): a
	// blocked Read would survive Close. Re-wrap a non-blocking duplicate so
	// the runtime poller handles it.
	fd, err := syscall.Dup(int(m.Fd()))
	if err != nil {
		tb.Fatal(err)
	}
	m.Close()
	if err := syscall.SetNonblock(fd, true); err != nil {
		tb.Fatal(err)
	}
	sc := &scanner{master: os.NewFile(uintptr(fd), "ptmx"), slave: s, path: s.Name()}
	tb.Cleanup(sc.unplug)
	return sc
}

// unplug closes both ends: the reader's next read fails.
func (s *scanner) unplug() {
	s.master.Close()
	s.slave.Close()
}

func (s *scanner) write(tb testing.TB, data string) {
	tb.Helper()
	if _, err := s.master.Write([]byte(data)); err != nil {
		tb.Fatalf("write to pty master: %v", err)
	}
}

// readAck reads exactly n bytes of acknowledgement.
func (s *scanner) readAck(tb testing.TB, n int) []byte {
	tb.Helper()
	buf := make([]byte, n)
	s.master.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, err := io.ReadFull(s.master, buf); err != nil {
		tb.Fatalf("read %d ack bytes: %v", n, err)
	}
	return buf
}

// expectSilence checks that no bytes come back within d.
func (s *scanner) expectSilence(tb testing.TB, d time.Duration) {
	tb.Helper()
	buf := make([]byte, 16)
	s.master.SetReadDeadline(time.Now().Add(d))
	n, err := s.master.Read(buf)
	if n > 0 {
		tb.Fatalf("got unexpected bytes % x", buf[:n])
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		tb.Fatalf("read: %v, want a deadline error", err)
	}
}
