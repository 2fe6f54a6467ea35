//go:build unix

package config

import (
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// serviceGroup is the group the packaged service runs in; the packages
// install the configuration 0640 root:scanagent.
var serviceGroup = "scanagent"

// othersCanRead reports whether users other than the file's owner may read
// path, and its mode. Group read is accepted in one layout, the package's:
// owned by root, group serviceGroup, nobody else.
func othersCanRead(path string) (os.FileMode, bool) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, false
	}
	perm := st.Mode().Perm()
	var uid, gid uint32 = 1, 0
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		uid, gid = sys.Uid, sys.Gid
	}
	return perm, exposed(perm, uid, groupName(gid))
}

// exposed is the verdict of othersCanRead on a file's mode, owner and
// group name.
func exposed(perm os.FileMode, uid uint32, group string) bool {
	switch {
	case perm&0o004 != 0:
		return true
	case perm&0o040 == 0:
		return false
	}
	return uid != 0 || group != serviceGroup
}

// groupName is the name of group gid, or "" when it has none.
func groupName(gid uint32) string {
	g, err := user.LookupGroupId(strconv.FormatUint(uint64(gid), 10))
	if err != nil {
		return ""
	}
	return g.Name
}
