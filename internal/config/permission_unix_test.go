//go:build unix

package config

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestLoadPermissionDeniedSaysWhatToDo runs Load as an unprivileged user
// (a copy of this test binary started as nobody) on a config only root can
// read: the error names sudo and the group.
func TestLoadPermissionDeniedSaysWhatToDo(t *testing.T) {
	if path := os.Getenv("SCANAGENT_TEST_LOAD"); path != "" {
		_, err := Load(path)
		if err != nil {
			os.Stdout.WriteString(err.Error())
		}
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to start a process as another user")
	}
	if testing.Short() {
		t.Skip("starts a copy of the test binary; -short skips subprocess tests (under qemu it cannot be exec'ed directly)")
	}
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} { // nobody must reach the binary
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte("[platform]\nclient_secret = \"s\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "config.test")
	copyFile(t, self, bin)
	cmd := exec.Command(bin, "-test.run=^TestLoadPermissionDeniedSaysWhatToDo$")
	cmd.Env = append(os.Environ(), "SCANAGENT_TEST_LOAD="+cfg)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, want := range []string{"permission denied", "run this with sudo", "sudo usermod -aG scanagent $USER"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
