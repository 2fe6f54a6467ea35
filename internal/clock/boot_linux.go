package clock

import (
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

var bootID = sync.OnceValue(func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
})

// bootClock is CLOCK_BOOTTIME (it counts suspend too and is never set) and
// the kernel's ID of this boot, so readings compare across restarts.
func bootClock() (string, time.Duration) {
	id := bootID()
	var ts unix.Timespec
	if id == "" || unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil {
		return processClock()
	}
	return "boot-" + id, time.Duration(ts.Nano())
}
