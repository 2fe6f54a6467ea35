package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"go.bug.st/serial/enumerator"
)

// portsCmd lists the serial ports present, with the USB identity a
// technician can paste into a reader's port.
type portsCmd struct {
	// list enumerates the ports; nil = enumerator.GetDetailedPortsList.
	list func() ([]*enumerator.PortDetails, error)
}

// portInfo is one port as `ports --json` prints it. Fields that are unknown
// are empty; Match is "" for a port that is not USB.
type portInfo struct {
	Name         string `json:"name"`
	USB          bool   `json:"usb"`
	VID          string `json:"vid"`
	PID          string `json:"pid"`
	SerialNumber string `json:"serial_number"`
	Product      string `json:"product"`
	Manufacturer string `json:"manufacturer"`
	Match        string `json:"match"` // "usb:VID:PID[:SERIAL]" for port = ...
}

func (c *portsCmd) Run(_ context.Context, e *env, args []string) error {
	fs := newFlagSet("ports")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("usage: scanagent ports [--json]")
	}
	list := c.list
	if list == nil {
		list = func() ([]*enumerator.PortDetails, error) { return enumerator.GetDetailedPortsList() }
	}
	details, err := list()
	if err != nil {
		return fmt.Errorf("list serial ports: %w", err)
	}
	ports := make([]portInfo, 0, len(details))
	for _, d := range details {
		if d == nil {
			continue
		}
		p := portInfo{Name: d.Name, USB: d.IsUSB, SerialNumber: d.SerialNumber, Product: d.Product, Manufacturer: d.Manufacturer}
		if d.IsUSB {
			// The enumerator's casing changed between versions; the
			// reader compares case-insensitively.
			p.VID, p.PID = strings.ToLower(d.VID), strings.ToLower(d.PID)
			p.Match = usbMatch(p.VID, p.PID, p.SerialNumber)
		}
		ports = append(ports, p)
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i].Name < ports[j].Name })

	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(ports)
	}
	if len(ports) == 0 {
		fmt.Fprintln(e.stdout, "no serial ports found (is the scanner plugged in, and its driver installed?)")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PORT\tVID:PID\tSERIAL\tPRODUCT\tport = ...")
	for _, p := range ports {
		vidpid, match := "-", p.Name
		if p.USB {
			vidpid = p.VID + ":" + p.PID
		}
		if p.Match != "" {
			match = p.Match
		}
		product := strings.TrimSpace(strings.TrimSpace(p.Manufacturer) + " " + strings.TrimSpace(p.Product))
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%q\n", p.Name, vidpid, dash(p.SerialNumber), dash(product), match)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range ports {
		if p.Match == "" {
			continue
		}
		fmt.Fprintln(e.stdout, "\nA \"usb:\" port follows the scanner when it comes back under another name (another USB socket, a reboot);\ninclude the serial number when two scanners of the same model are plugged in.")
		break
	}
	return nil
}

// usbMatch is the port value that finds this USB device again, or "" when
// the VID and PID are not known.
func usbMatch(vid, pid, serialNumber string) string {
	if len(vid) != 4 || len(pid) != 4 {
		return ""
	}
	m := "usb:" + vid + ":" + pid
	if serialNumber != "" {
		m += ":" + serialNumber
	}
	return m
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
