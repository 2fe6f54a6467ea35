//go:build unix

package admin

import (
	"os"
	"syscall"
)

// restrictSocket makes the socket at path 0600, or 0660 when dir lets its
// group read and enter it and the socket can carry dir's group.
func restrictSocket(path, dir string) error {
	mode := os.FileMode(0o600)
	di, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if di.Mode().Perm()&0o050 == 0o050 {
		dst, ok1 := di.Sys().(*syscall.Stat_t)
		si, err := os.Lstat(path)
		if err != nil {
			return err
		}
		sst, ok2 := si.Sys().(*syscall.Stat_t)
		if ok1 && ok2 {
			if sst.Gid == dst.Gid || os.Lchown(path, -1, int(dst.Gid)) == nil {
				mode = 0o660
			}
		}
	}
	return os.Chmod(path, mode)
}
