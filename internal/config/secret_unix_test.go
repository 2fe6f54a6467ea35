//go:build unix

package config

import (
	"os"
	"os/user"
	"strconv"
	"strings"
	"testing"
)

func TestExposed(t *testing.T) {
	for _, tt := range []struct {
		perm  os.FileMode
		uid   uint32
		group string
		want  bool
	}{
		{0o600, 1000, "users", false},
		{0o640, 0, "scanagent", false}, // the package's layout
		{0o644, 0, "scanagent", true},
		{0o640, 0, "users", true},
		{0o640, 1000, "scanagent", true},
		{0o604, 0, "root", true},
		{0o660, 0, "scanagent", false},
	} {
		if got := exposed(tt.perm, tt.uid, tt.group); got != tt.want {
			t.Errorf("exposed(%04o, uid %d, group %q) = %v, want %v", tt.perm, tt.uid, tt.group, got, tt.want)
		}
	}
}

// TestWarningsPackageLayout: a config 0640 owned by root whose group is
// the service's own does not warn; the same file in another group does.
func TestWarningsPackageLayout(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the file to root and a group")
	}
	t.Setenv(EnvSecret, "")
	g, err := user.LookupGroupId("65534")
	if err != nil {
		t.Skip("no group 65534 to stand for the service's group")
	}
	old := serviceGroup
	serviceGroup = g.Name
	defer func() { serviceGroup = old }()
	path := mustWrite(t, t.TempDir(), "c.toml", head+reader1)
	for _, tt := range []struct {
		gid  int
		warn bool
	}{{65534, false}, {0, true}} {
		if err := os.Chown(path, 0, tt.gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o640); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		w := strings.Join(cfg.Warnings(), "\n")
		if got := strings.Contains(w, "other users can read it"); got != tt.warn {
			t.Errorf("0640 root:%s: warning %v (%q), want %v", strconv.Itoa(tt.gid), got, w, tt.warn)
		}
	}
}
