package reader

// On Windows a Read may not return after Close (go.bug.st/serial issue 77):
// the loop wakes up by itself every readTimeout to notice cancellation, and
// the port is closed only after the Read has returned.
var idleReadTimeout = readTimeout

const closeEndsRead = false
