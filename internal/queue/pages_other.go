//go:build !linux

package queue

import bolt "go.etcd.io/bbolt"

// dropPages releases the touched pages of the memory map on Linux only
// (see pages_linux.go); elsewhere it does nothing.
func dropPages(*bolt.Tx) {}
