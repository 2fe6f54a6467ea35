package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"go.bug.st/serial/enumerator"
)

func TestPortsJSONRuns(t *testing.T) {
	// The real enumerator: the list may be empty here, but it is JSON.
	code, out, errs := runCLI(t, context.Background(), "ports", "--json")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	var ports []portInfo
	if err := json.Unmarshal([]byte(out), &ports); err != nil || ports == nil {
		t.Fatalf("stdout %q: %v, want a JSON array", out, err)
	}
	for _, p := range ports {
		if strings.HasPrefix(p.Name, "/dev/pts/") {
			t.Errorf("listed a pseudo-terminal: %+v", p)
		}
	}
}

func TestPortsTableAndJSON(t *testing.T) {
	c := &portsCmd{list: func() ([]*enumerator.PortDetails, error) {
		return []*enumerator.PortDetails{
			{Name: "/dev/ttyUSB0", IsUSB: true, VID: "1A86", PID: "7523", SerialNumber: "A5XK3RJT", Product: "USB Serial"},
			{Name: "/dev/ttyS0"},
			{Name: "/dev/ttyACM0", IsUSB: true, VID: "0483", PID: "5740"},
		}, nil
	}}
	var out bytes.Buffer
	if err := c.Run(context.Background(), &env{stdout: &out}, nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`/dev/ttyACM0  0483:5740  -         -           "usb:0483:5740"`,
		`/dev/ttyS0    -          -         -           "/dev/ttyS0"`,
		`/dev/ttyUSB0  1a86:7523  A5XK3RJT  USB Serial  "usb:1a86:7523:A5XK3RJT"`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}

	out.Reset()
	if err := c.Run(context.Background(), &env{stdout: &out}, []string{"--json"}); err != nil {
		t.Fatal(err)
	}
	var ports []portInfo
	if err := json.Unmarshal(out.Bytes(), &ports); err != nil {
		t.Fatal(err)
	}
	want := portInfo{Name: "/dev/ttyUSB0", USB: true, VID: "1a86", PID: "7523", SerialNumber: "A5XK3RJT", Product: "USB Serial", Match: "usb:1a86:7523:A5XK3RJT"}
	if len(ports) != 3 || ports[2] != want || ports[1].Match != "" {
		t.Errorf("got %+v, want 3 ports, the last %+v", ports, want)
	}
}
