//go:build unix

package reader

import (
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// portGroup is the name of the group that owns the device at path ("dialout"),
// or "" when it cannot tell.
func portGroup(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return ""
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	g, err := user.LookupGroupId(strconv.FormatUint(uint64(sys.Gid), 10))
	if err != nil {
		return ""
	}
	return g.Name
}
