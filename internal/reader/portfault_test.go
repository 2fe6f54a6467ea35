package reader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/creack/pty"
	"go.bug.st/serial"
)

// TestDiagnosePort opens ports for real where the fault can be staged (a
// missing device, a port held open) and names cause and fix.
func TestDiagnosePort(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "ttyUSB9")
	_, err := serial.Open(missing, &serial.Mode{BaudRate: 9600})
	if err == nil {
		t.Fatal("opening a missing port succeeded")
	}
	f := DiagnosePort(missing, err)
	if f.Cause != "the port does not exist" || !strings.Contains(f.Fix, "scanagent ports") {
		t.Errorf("missing port: %s", f)
	}

	f = DiagnosePort("usb:1a86:7523", fmt.Errorf("%w: usb:1a86:7523", errNoUSBDevice))
	if f.Cause != "the port does not exist" {
		t.Errorf("usb device missing: %s", f)
	}

	// A port another program holds: the holder is named where Linux tells.
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	defer tty.Close()
	busy := &serial.PortError{} // the zero code is serial.PortBusy, what Open returns for EBUSY
	if busy.Code() != serial.PortBusy {
		t.Fatalf("zero PortError has code %v", busy.Code())
	}
	f = DiagnosePort(tty.Name(), busy)
	if !strings.Contains(f.Fix, "stop that program") {
		t.Errorf("busy port: %s", f)
	}
	if runtime.GOOS == "linux" {
		want := fmt.Sprintf("PID %d (", os.Getpid())
		if !strings.Contains(f.Cause, want) {
			t.Errorf("busy port: cause %q does not name this process (%s…)", f.Cause, want)
		}
	}

	f = DiagnosePort(tty.Name(), fmt.Errorf("open: %w", os.ErrPermission))
	if f.Cause != "no permission to open the port" || (runtime.GOOS == "linux" && !strings.Contains(f.Fix, "usermod -aG")) {
		t.Errorf("permission: %s", f)
	}
	f = DiagnosePort(tty.Name(), errors.New("input/output error"))
	if !strings.Contains(f.Cause, "input/output error") || !strings.Contains(f.Fix, "check the cable") {
		t.Errorf("other: %s", f)
	}
}
