package reader

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"go.bug.st/serial"
)

// PortFault is why a serial port did not open, in a technician's words, and
// what to do about it. The agent's log, monitor and doctor all use it, so a
// fault reads the same wherever it is met.
type PortFault struct {
	Cause string // "the port does not exist", "in use by PID 412 (minicom)"
	Fix   string
}

func (f PortFault) String() string { return f.Cause + "; fix: " + f.Fix }

// DiagnosePort explains err, returned by opening the port at path.
func DiagnosePort(path string, err error) PortFault {
	var pe *serial.PortError
	isPE := errors.As(err, &pe)
	switch {
	case errors.Is(err, fs.ErrNotExist) || (isPE && (pe.Code() == serial.PortNotFound || pe.Code() == serial.InvalidSerialPort)) || errors.Is(err, errNoUSBDevice):
		return PortFault{
			Cause: "the port does not exist",
			Fix:   "plug the scanner in and check its cable; `scanagent ports` lists the ports present and the port = value to use",
		}
	case (isPE && pe.Code() == serial.PortBusy) || errors.Is(err, syscall.EBUSY):
		cause := "the port is in use by another program"
		if holders := PortHolders(path); len(holders) > 0 {
			cause = "the port is in use by " + strings.Join(holders, ", ")
		}
		return PortFault{
			Cause: cause,
			Fix:   "stop that program (a running agent: scanagent service stop; or use scanagent monitor --live) and try again",
		}
	case (isPE && pe.Code() == serial.PermissionDenied) || errors.Is(err, fs.ErrPermission):
		fix := "run as root, or add the user to the port's group"
		if g := portGroup(path); g != "" {
			fix = fmt.Sprintf("add the user to the port's group %s (sudo usermod -aG %s scanagent for the service; log in again for yourself)", g, g)
		}
		if runtime.GOOS == "windows" {
			fix = "run from an Administrator command prompt, and check no other program has the port open"
		}
		return PortFault{Cause: "no permission to open the port", Fix: fix}
	}
	return PortFault{
		Cause: fmt.Sprintf("the port did not open (%v)", err),
		Fix:   "check the cable and the port = value (`scanagent ports` lists the ports present)",
	}
}

// PortHolders names the processes that have path open ("PID 412
// (minicom)"), where the system tells (Linux /proc; root sees them all).
// It returns nil when it cannot tell.
func PortHolders(path string) []string {
	if runtime.GOOS != "linux" {
		return nil
	}
	want, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []string
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, err := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name()))
			if err == nil && target == want {
				comm, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "comm"))
				out = append(out, fmt.Sprintf("PID %d (%s)", pid, strings.TrimSpace(string(comm))))
				break
			}
		}
	}
	return out
}
