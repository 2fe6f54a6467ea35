//go:build !unix

package reader

import (
	"testing"
	"time"
)

// scanner needs a pseudo-terminal: the tests that use one are skipped here.
type scanner struct{ path string }

func newScanner(tb testing.TB) *scanner {
	tb.Skip("no pseudo-terminals on this platform")
	return nil
}

func (s *scanner) unplug()                                      {}
func (s *scanner) write(tb testing.TB, data string)             {}
func (s *scanner) readAck(tb testing.TB, n int) []byte          { return nil }
func (s *scanner) expectSilence(tb testing.TB, d time.Duration) {}
