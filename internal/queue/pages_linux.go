package queue

import (
	"golang.org/x/sys/unix"

	bolt "go.etcd.io/bbolt"
)

// dropPages tells the kernel that the process no longer needs the pages of
// the file's memory map that it has touched: a touched page of the map
// counts in the process's RSS until it is dropped, so reading through a
// backlog of a million records would keep hundreds of MB resident. The map
// is shared and read-only, so MADV_DONTNEED only unmaps: the data stays in
// the page cache and the next read maps it again (a minor fault). It must
// run inside a read transaction, which keeps bbolt from remapping the file
// meanwhile; other transactions reading the map at the same time are
// unaffected. Best effort: an error changes nothing.
func dropPages(tx *bolt.Tx) {
	data := tx.DB().Info().Data
	size := tx.Size()
	if data == 0 || size <= 0 {
		return
	}
	_, _, _ = unix.Syscall(unix.SYS_MADVISE, data, uintptr(size), unix.MADV_DONTNEED)
}
