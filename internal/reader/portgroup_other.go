//go:build !unix

package reader

// portGroup: serial ports have no owning group here.
func portGroup(string) string { return "" }
