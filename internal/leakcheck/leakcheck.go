// Package leakcheck finds goroutines a package's tests leave running. A
// test package calls it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(leakcheck.Main(m)) }
//
// After the tests, every goroutine that did not exist before them and is
// not the runtime's or the testing package's must end within a grace
// period, or their stacks are printed and the run fails. It is for tests
// only.
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

// Runner is what *testing.M is.
type Runner interface{ Run() int }

// Grace is how long leftover goroutines get to end.
const Grace = 5 * time.Second

// Main runs the tests and then the check; it returns the exit code.
func Main(m Runner) int {
	before := ids(stacks())
	code := m.Run()
	if code != 0 {
		return code
	}
	deadline := time.Now().Add(Grace)
	for {
		left := Leftover(before)
		if len(left) == 0 {
			return code
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "leakcheck: %d goroutine(s) still running after the tests:\n\n%s\n", len(left), strings.Join(left, "\n\n"))
			return 1
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Leftover returns the stacks of goroutines not in before and not the
// runtime's, the testing package's or this one's.
func Leftover(before map[string]bool) []string {
	var out []string
	for _, g := range stacks() {
		if before[id(g)] || ignored(g) {
			continue
		}
		out = append(out, g)
	}
	return out
}

// Snapshot returns the goroutines running now, for Leftover.
func Snapshot() map[string]bool { return ids(stacks()) }

func stacks() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Split(strings.TrimSpace(string(buf[:n])), "\n\n")
		}
		buf = make([]byte, 2*len(buf))
	}
}

func ids(gs []string) map[string]bool {
	m := map[string]bool{}
	for _, g := range gs {
		m[id(g)] = true
	}
	return m
}

// id is "goroutine 12" of "goroutine 12 [running]:".
func id(g string) string {
	head, _, _ := strings.Cut(g, " [")
	return head
}

func ignored(g string) bool {
	for _, s := range []string{
		"scanagent/internal/leakcheck.Main(",
		"testing.(*M).",
		"testing.tRunner",
		"testing.runTests",
		"runtime.goexit0",
		"created by runtime.gc",
		"runtime.ReadTrace",
		"os/signal.signal_recv",
		"created by os/signal.Notify",
	} {
		if strings.Contains(g, s) {
			return true
		}
	}
	return false
}
