//go:build unix

package logs

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// UnderJournal reports whether f is the stream systemd connected to the
// journal: JOURNAL_STREAM names its device and inode (systemd.exec(5)).
func UnderJournal(f *os.File) bool {
	js := os.Getenv("JOURNAL_STREAM")
	if js == "" || f == nil {
		return false
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return js == fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}
