package service

import (
	"strings"
	"testing"
)

func TestServiceSID(t *testing.T) {
	// Windows' own: NT SERVICE\TrustedInstaller.
	if got, want := ServiceSID("TrustedInstaller"), "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464"; got != want {
		t.Fatalf("ServiceSID(TrustedInstaller) = %s, want %s", got, want)
	}
	if ServiceSID("scanagent") != ServiceSID("ScanAgent") {
		t.Fatal("the service name is not case-folded")
	}
}

// TestWritableByOrdinaryUsers: security descriptors as Windows writes them
// (GetNamedSecurityInfo, then SDDL) for the places the exe and the config
// are put.
func TestWritableByOrdinaryUsers(t *testing.T) {
	const ti = "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464"
	svc := ServiceSID(Name)
	for _, tc := range []struct {
		name string
		sddl string
		dir  bool
		want string // group, "" for none, "error"
	}{
		{"a Windows exe", "O:" + ti + "G:" + ti + "D:PAI(A;;FA;;;" + ti + ")(A;;0x1200a9;;;BA)(A;;0x1200a9;;;SY)(A;;0x1200a9;;;BU)(A;;0x1200a9;;;AC)", false, ""},
		{"exe copied to Program Files", "O:BAG:S-1-5-21-1-2-3-513D:AI(A;ID;FA;;;SY)(A;ID;FA;;;BA)(A;ID;0x1200a9;;;BU)(A;ID;0x1200a9;;;AC)", false, ""},
		{"Program Files\\scanagent", "O:BAG:S-1-5-21-1-2-3-513D:AI(A;OICIID;FA;;;SY)(A;OICIID;FA;;;BA)(A;OICIIOID;GA;;;CO)(A;OICIID;0x1200a9;;;BU)", true, ""},
		{"exe in C:\\scanagent", "O:BAG:S-1-5-21-1-2-3-513D:AI(A;ID;FA;;;BA)(A;ID;FA;;;SY)(A;ID;0x1200a9;;;BU)(A;ID;0x1301bf;;;AU)", false, "Authenticated Users"},
		{"C:\\scanagent", "O:BAG:S-1-5-21-1-2-3-513D:AI(A;ID;FA;;;BA)(A;OICIIOID;GA;;;BA)(A;ID;FA;;;SY)(A;OICIID;0x1200a9;;;BU)(A;ID;0x1301bf;;;AU)(A;OICIIOID;SDGXGWGR;;;AU)", true, "Authenticated Users"},
		{"ProgramData\\scanagent (users may add files)", "O:BAG:S-1-5-21-1-2-3-513D:AI(A;OICIID;FA;;;SY)(A;OICIID;FA;;;BA)(A;OICIIOID;GA;;;CO)(A;OICIID;0x1200a9;;;BU)(A;CIID;DCLCRPCR;;;BU)", true, ""},
		{"config in ProgramData\\scanagent", "O:BAG:S-1-5-21-1-2-3-513D:AI(A;ID;FA;;;SY)(A;ID;FA;;;BA)(A;ID;0x1200a9;;;BU)", false, ""},
		{"config users may write", "O:BAD:AI(A;ID;FA;;;SY)(A;ID;FA;;;BA)(A;;FW;;;BU)", false, "Users"},
		{"Everyone full control", "D:(A;;FA;;;WD)", false, "Everyone"},
		{"Everyone by SID, generic write", "D:(A;;GW;;;S-1-1-0)", false, "Everyone"},
		{"append only", "D:(A;;0x4;;;BU)", false, "Users"},
		{"write DAC", "D:(A;;WD;;;AU)", true, "Authenticated Users"},
		{"Domain Users by SID", "D:(A;;FW;;;S-1-5-21-11-22-33-513)", false, "Domain Users"},
		{"owned by Users", "O:BUD:(A;;FA;;;SY)", false, "Users (owner)"},
		{"deny only", "D:(D;;FA;;;WD)", false, ""},
		{"read and execute only", "D:(A;;FRFX;;;WD)(A;;0x1200a9;;;BU)", false, ""},
		{"add files to a directory", "D:(A;;0x6;;;BU)", true, ""},
		{"delete children of a directory", "D:(A;;0x40;;;BU)", true, "Users"},
		{"no DACL at all", "D:NO_ACCESS_CONTROL", false, "Everyone (no DACL)"},
		{"our data_dir", PrivateDirSDDL(svc), true, ""},
		{"our config", PrivateFileSDDL(svc), false, ""},
		{"no D: part", "O:BAG:SY", false, "error"},
		{"bad rights", "D:(A;;ZZ;;;BU)", false, "error"},
		{"short ACE", "D:(A;;FA)", false, "error"},
	} {
		got, err := WritableByOrdinaryUsers(tc.sddl, tc.dir)
		if err != nil {
			got = "error"
		}
		if got != tc.want {
			t.Errorf("%s: got %q (%v), want %q", tc.name, got, err, tc.want)
		}
	}
}

func TestPrivateSDDL(t *testing.T) {
	svc := ServiceSID(Name)
	d := PrivateDirSDDL(svc)
	if !strings.HasPrefix(d, "D:P") || !strings.Contains(d, "(A;OICI;FA;;;SY)") || !strings.Contains(d, "(A;OICI;FA;;;BA)") ||
		!strings.Contains(d, "(A;OICI;FA;;;"+svc+")") || strings.Count(d, "(") != 3 {
		t.Fatalf("PrivateDirSDDL = %s", d)
	}
	f := PrivateFileSDDL(svc)
	if !strings.HasPrefix(f, "D:P") || !strings.Contains(f, "(A;;FR;;;"+svc+")") || strings.Count(f, "(") != 3 {
		t.Fatalf("PrivateFileSDDL = %s", f)
	}
}
