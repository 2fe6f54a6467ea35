//go:build unix

package queue

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// keepOwner gives a file this process created or replaced in the data dir
// the owner of that directory, when the process runs as root: a command a
// technician runs as root (compact, salvage, retry, drop, doctor) must not
// leave a file the service's user cannot open. Running as anyone else, the
// file is theirs already and nothing is done.
func keepOwner(path string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	dir, err := os.Stat(filepath.Dir(path))
	if err != nil {
		return err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	want, got := dir.Sys().(*syscall.Stat_t), fi.Sys().(*syscall.Stat_t)
	if want.Uid == got.Uid && want.Gid == got.Gid {
		return nil
	}
	if err := os.Lchown(path, int(want.Uid), int(want.Gid)); err != nil {
		return fmt.Errorf("%s would be left owned by root, which the service's user cannot open, and giving it to the owner of %s failed: %w; "+
			"run this command as the service's user (sudo -u scanagent …)", path, filepath.Dir(path), err)
	}
	return nil
}
