//go:build windows

package alerts

import "golang.org/x/sys/windows"

// DiskFree returns the bytes free (for this user) and the size of the
// volume holding dir.
func DiskFree(dir string) (free, total uint64, err error) {
	p, err := windows.UTF16PtrFromString(dir)
	if err != nil {
		return 0, 0, err
	}
	var avail, tot, all uint64
	if err := windows.GetDiskFreeSpaceEx(p, &avail, &tot, &all); err != nil {
		return 0, 0, err
	}
	return avail, tot, nil
}
