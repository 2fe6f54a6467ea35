package reader

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"go.bug.st/serial"
	"go.bug.st/serial/enumerator"

	"scanagent/internal/config"
)

// serialMode maps the [[reader]] line settings to go.bug.st/serial's.
func serialMode(cfg config.Reader) (*serial.Mode, error) {
	m := &serial.Mode{BaudRate: cfg.Baud, DataBits: cfg.DataBits}
	if cfg.Baud <= 0 {
		return nil, fmt.Errorf("baud = %d: must be positive, e.g. 9600", cfg.Baud)
	}
	if cfg.DataBits < 5 || cfg.DataBits > 8 {
		return nil, fmt.Errorf("data_bits = %d: want 5, 6, 7 or 8", cfg.DataBits)
	}
	switch strings.ToLower(cfg.Parity) {
	case "none", "":
		m.Parity = serial.NoParity
	case "odd":
		m.Parity = serial.OddParity
	case "even":
		m.Parity = serial.EvenParity
	case "mark":
		m.Parity = serial.MarkParity
	case "space":
		m.Parity = serial.SpaceParity
	default:
		return nil, fmt.Errorf("parity = %q: want none, odd, even, mark or space", cfg.Parity)
	}
	switch cfg.StopBits {
	case "1", "":
		m.StopBits = serial.OneStopBit
	case "1.5":
		m.StopBits = serial.OnePointFiveStopBits
	case "2":
		m.StopBits = serial.TwoStopBits
	default:
		return nil, fmt.Errorf("stop_bits = %q: want \"1\", \"1.5\" or \"2\"", cfg.StopBits)
	}
	return m, nil
}

// usbSpec is a port given as "usb:VID:PID[:SERIAL]".
type usbSpec struct {
	vid, pid, serial string
}

const usbPrefix = "usb:"

// parseUSBSpec parses a "usb:" port; ok is false for a plain device path.
func parseUSBSpec(port string) (spec usbSpec, ok bool, err error) {
	if len(port) < len(usbPrefix) || !strings.EqualFold(port[:len(usbPrefix)], usbPrefix) {
		return usbSpec{}, false, nil
	}
	parts := strings.SplitN(port[len(usbPrefix):], ":", 3)
	if len(parts) < 2 || !isHex4(parts[0]) || !isHex4(parts[1]) {
		return usbSpec{}, true, fmt.Errorf("port = %q: want \"usb:VID:PID\" or \"usb:VID:PID:SERIAL\" with 4 hex digits each, e.g. \"usb:1a86:7523\" (see `scanagent ports`)", port)
	}
	spec = usbSpec{vid: parts[0], pid: parts[1]}
	if len(parts) == 3 {
		spec.serial = parts[2]
	}
	return spec, true, nil
}

func isHex4(s string) bool {
	if len(s) != 4 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

func (s usbSpec) String() string {
	if s.serial != "" {
		return fmt.Sprintf("usb:%s:%s:%s", s.vid, s.pid, s.serial)
	}
	return fmt.Sprintf("usb:%s:%s", s.vid, s.pid)
}

// resolve finds the device path of the USB serial port matching s among
// ports. VID and PID compare case-insensitively (the enumerator's casing
// changed between versions); the serial number exactly.
// errNoUSBDevice: no serial device with the USB identity of a "usb:" port
// is plugged in.
var errNoUSBDevice = errors.New("no USB serial device present with")

func (s usbSpec) resolve(ports []*enumerator.PortDetails) (string, error) {
	for _, p := range ports {
		if p == nil || !p.IsUSB || p.Name == "" {
			continue
		}
		if !strings.EqualFold(p.VID, s.vid) || !strings.EqualFold(p.PID, s.pid) {
			continue
		}
		if s.serial != "" && p.SerialNumber != s.serial {
			continue
		}
		return p.Name, nil
	}
	return "", fmt.Errorf("%w: %s", errNoUSBDevice, s)
}

// parseHexBytes reads ack bytes written as hex: "07", "06 0d", "060d",
// "0x06,0x0d". An empty string is no bytes.
func parseHexBytes(key, s string) ([]byte, error) {
	var out []byte
	for _, tok := range strings.FieldsFunc(s, func(r rune) bool {
		return r == ' ' || r == '\t' || r == ',' || r == ':' || r == '-'
	}) {
		if len(tok) > 2 && (tok[:2] == "0x" || tok[:2] == "0X") {
			tok = tok[2:]
		}
		b, err := hex.DecodeString(tok)
		if err != nil {
			return nil, fmt.Errorf("%s = %q: want hex bytes, e.g. \"07\" or \"06 0d\"", key, s)
		}
		out = append(out, b...)
	}
	return out, nil
}
