package service

import (
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
)

// The Windows service's account and the ACLs `service install` sets, as
// pure functions of strings (SDDL, the text form of a security descriptor)
// so they are tested on any system; acl_windows.go reads and writes them.

// VirtualAccount is the account the Windows service runs as: a virtual
// account Windows makes for the service, with no password and no rights
// beyond what an ACL grants it.
const VirtualAccount = `NT SERVICE\` + Name

// ServiceSID is the SID Windows gives the virtual account NT SERVICE\name:
// S-1-5-80 followed by the SHA-1 of the upper-cased name in UTF-16LE, read
// as five little-endian 32-bit numbers. It exists before the service does,
// so ACLs can name it at install.
func ServiceSID(name string) string {
	u := utf16.Encode([]rune(strings.ToUpper(name)))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	sum := sha1.Sum(b)
	var sb strings.Builder
	sb.WriteString("S-1-5-80")
	for i := 0; i < 5; i++ {
		sb.WriteString("-" + strconv.FormatUint(uint64(binary.LittleEndian.Uint32(sum[4*i:])), 10))
	}
	return sb.String()
}

// PrivateDirSDDL is the protected DACL of data_dir and the log directory:
// full control for SYSTEM, Administrators and the service's SID, inherited
// by everything in them, nothing from the parent (so none of the "Users
// may create files" a folder under C:\ or ProgramData inherits).
func PrivateDirSDDL(serviceSID string) string {
	return "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;FA;;;" + serviceSID + ")"
}

// PrivateFileSDDL is the protected DACL of the configuration and the client
// secret file: full control for SYSTEM and Administrators, read for the
// service's SID.
func PrivateFileSDDL(serviceSID string) string {
	return "D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FR;;;" + serviceSID + ")"
}

// Access rights as SDDL spells them (sddl.h): the two-letter codes name
// bits of the access mask; file rights reuse the directory-service names.
var sddlRights = map[string]uint32{
	"CC": 0x1, "DC": 0x2, "LC": 0x4, "SW": 0x8, "RP": 0x10, "WP": 0x20, "DT": 0x40, "LO": 0x80, "CR": 0x100,
	"SD": 0x10000, "RC": 0x20000, "WD": 0x40000, "WO": 0x80000,
	"GA": 0x10000000, "GX": 0x20000000, "GW": 0x40000000, "GR": 0x80000000,
	"FA": 0x1F01FF, "FR": 0x120089, "FW": 0x120116, "FX": 0x1200A0,
	"KA": 0xF003F, "KR": 0x20019, "KW": 0x20006, "KX": 0x20019,
}

// Rights that let a user change a file, or replace it: write or append
// data, delete, change its ACL or owner, generic all/write.
const fileWriteMask = 0x2 | 0x4 | 0x10000 | 0x40000 | 0x80000 | 0x10000000 | 0x40000000

// Rights on a directory that let a user replace a file in it: delete a
// child, delete or rename the directory itself, change its ACL or owner,
// generic all/write. (Adding files alone replaces nothing.)
const dirWriteMask = 0x40 | 0x10000 | 0x40000 | 0x80000 | 0x10000000 | 0x40000000

// ordinarySIDs are the groups every user is in: Everyone, Authenticated
// Users, Users, Interactive, Anonymous, Guests, by alias and by SID.
var ordinarySIDs = map[string]string{
	"WD": "Everyone", "S-1-1-0": "Everyone",
	"AU": "Authenticated Users", "S-1-5-11": "Authenticated Users",
	"BU": "Users", "S-1-5-32-545": "Users",
	"IU": "Interactive", "S-1-5-4": "Interactive",
	"AN": "Anonymous", "S-1-5-7": "Anonymous",
	"BG": "Guests", "S-1-5-32-546": "Guests",
	"DU": "Domain Users", "DG": "Domain Guests",
}

// ordinary names the group of sid when every user is in it, or "".
func ordinary(sid string) string {
	if n, ok := ordinarySIDs[strings.ToUpper(sid)]; ok {
		return n
	}
	if strings.HasPrefix(sid, "S-1-5-21-") && strings.HasSuffix(sid, "-513") {
		return "Domain Users"
	}
	if strings.HasPrefix(sid, "S-1-5-21-") && strings.HasSuffix(sid, "-514") {
		return "Domain Guests"
	}
	return ""
}

// WritableByOrdinaryUsers reads a security descriptor in SDDL and says
// which group of ordinary users may change the object (or, for a
// directory, replace what is in it), or "" when none may. An owner that is
// such a group counts (an owner may always rewrite the ACL); allow ACEs
// that apply to the object itself count, inherit-only ones do not; deny
// ACEs are not subtracted (the verdict errs on refusing). An SDDL it cannot
// read is an error.
func WritableByOrdinaryUsers(sddl string, dir bool) (string, error) {
	mask := uint32(fileWriteMask)
	if dir {
		mask = dirWriteMask
	}
	owner, dacl := sddlParts(sddl)
	if g := ordinary(owner); g != "" {
		return g + " (owner)", nil
	}
	if !strings.Contains(sddl, "D:") {
		return "", fmt.Errorf("no DACL in %q", sddl)
	}
	if strings.HasPrefix(dacl, "NO_ACCESS_CONTROL") {
		return "Everyone (no DACL)", nil
	}
	for rest := dacl; ; {
		i := strings.IndexByte(rest, '(')
		if i < 0 {
			return "", nil
		}
		j := strings.IndexByte(rest[i:], ')')
		if j < 0 {
			return "", fmt.Errorf("unterminated ACE in %q", sddl)
		}
		ace := strings.Split(rest[i+1:i+j], ";")
		rest = rest[i+j+1:]
		if len(ace) < 6 {
			return "", fmt.Errorf("bad ACE %q", strings.Join(ace, ";"))
		}
		typ, flags, rights, sid := ace[0], ace[1], ace[2], ace[5]
		if typ != "A" && typ != "XA" && typ != "OA" {
			continue // deny, audit, label
		}
		if aceFlag(flags, "IO") {
			continue // inherit-only: not this object's
		}
		g := ordinary(sid)
		if g == "" {
			continue
		}
		m, err := parseRights(rights)
		if err != nil {
			return "", err
		}
		if m&mask != 0 {
			return g, nil
		}
	}
}

// sddlParts returns the owner SID and the DACL part ("D:..." up to "S:").
func sddlParts(sddl string) (owner, dacl string) {
	if i := strings.Index(sddl, "O:"); i >= 0 {
		owner = sddl[i+2:]
		for _, stop := range []string{"G:", "D:", "S:"} {
			if k := strings.Index(owner, stop); k >= 0 {
				owner = owner[:k]
			}
		}
	}
	if i := strings.Index(sddl, "D:"); i >= 0 {
		dacl = sddl[i+2:]
		if k := strings.Index(dacl, "S:"); k >= 0 {
			dacl = dacl[:k]
		}
	}
	return owner, dacl
}

// aceFlag reports whether the two-letter flag f is among flags.
func aceFlag(flags, f string) bool {
	for i := 0; i+2 <= len(flags); i += 2 {
		if flags[i:i+2] == f {
			return true
		}
	}
	return false
}

// parseRights reads an ACE's rights: a hex or decimal mask, or two-letter
// codes.
func parseRights(s string) (uint32, error) {
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		v, err := strconv.ParseUint(s[2:], 16, 32)
		return uint32(v), err
	}
	if v, err := strconv.ParseUint(s, 10, 32); err == nil {
		return uint32(v), nil
	}
	var m uint32
	for i := 0; i+2 <= len(s); i += 2 {
		r, ok := sddlRights[s[i:i+2]]
		if !ok {
			return 0, fmt.Errorf("unknown access right %q in %q", s[i:i+2], s)
		}
		m |= r
	}
	if len(s)%2 != 0 {
		return 0, fmt.Errorf("bad access rights %q", s)
	}
	return m, nil
}
