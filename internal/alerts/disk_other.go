//go:build !unix && !windows

package alerts

import "errors"

// DiskFree is not available on this system: the disk condition then rests
// on the queue's write errors alone.
func DiskFree(string) (free, total uint64, err error) {
	return 0, 0, errors.New("free disk space unknown on this system")
}
