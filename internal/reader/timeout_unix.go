//go:build !windows

package reader

import "go.bug.st/serial"

// On Unix, Close ends a pending Read: Run's Read waits without limit while
// no frame is pending, and cancellation closes the port.
var idleReadTimeout = serial.NoTimeout

const closeEndsRead = true
