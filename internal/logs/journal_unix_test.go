//go:build unix

package logs

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// JOURNAL_STREAM must name the very stream: a stderr redirected elsewhere
// by a wrapper script is not the journal.
func TestUnderJournal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stream"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	t.Setenv("JOURNAL_STREAM", "")
	if UnderJournal(f) {
		t.Fatal("no JOURNAL_STREAM, yet under the journal")
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))
	if !UnderJournal(f) {
		t.Fatal("the named stream not recognised")
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino+1))
	if UnderJournal(f) {
		t.Fatal("another stream taken for the journal")
	}
}
