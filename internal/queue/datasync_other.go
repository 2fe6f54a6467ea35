//go:build !linux

package queue

import "os"

// datasync flushes f to the device.
func datasync(f *os.File) error { return f.Sync() }
