//go:build !linux

package clock

import "time"

// bootClock: without a boot ID from the system, readings compare within
// this process only (the monotonic clock).
func bootClock() (string, time.Duration) { return processClock() }
