//go:build !unix

package queue

// keepOwner does nothing: on Windows a file takes the ACL of data_dir.
func keepOwner(string) error { return nil }
