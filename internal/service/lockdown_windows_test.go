package service

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/windows"
)

// TestLockDown writes the ACLs install sets and reads them back: the
// directories and files end up with the service's SID and no ordinary
// users, and an exe in such a place passes beforeInstall.
// Wine keeps no ACLs (it derives them from Unix modes), so it is skipped
// there; the pure functions it relies on are tested everywhere.
func TestLockDown(t *testing.T) {
	if windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version").Find() == nil {
		t.Skip("wine does not store ACLs")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	def := Definition{Executable: cfg, ConfigPath: cfg, PrivateDirs: []string{data}, PrivateFiles: []string{cfg, filepath.Join(dir, "missing")}}
	if err := lockDown(def); err != nil {
		t.Fatal(err)
	}
	sid := ServiceSID(Name)
	for _, p := range []struct {
		path string
		dir  bool
	}{{data, true}, {cfg, false}} {
		sddl, err := readSDDL(p.path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(sddl, sid) {
			t.Errorf("%s: %s lacks the service's SID %s", p.path, sddl, sid)
		}
		if g, err := WritableByOrdinaryUsers(sddl, p.dir); err != nil || g != "" {
			t.Errorf("%s: %s: writable by %q, %v", p.path, sddl, g, err)
		}
	}
}
