//go:build unix

package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// dialEnv names the socket a child process of TestMain dials (see
// TestSocketRefusesOtherUsers).
const dialEnv = "SCANAGENT_TEST_DIAL_SOCKET"

// Exit codes of the dialling child.
const (
	dialAnswered = 0
	dialRefused  = 3
	dialOther    = 4
)

func TestMain(m *testing.M) {
	if path := os.Getenv(dialEnv); path != "" {
		os.Exit(dialOnce(path))
	}
	os.Exit(m.Run())
}

// dialOnce asks the queue API at path for its stats, as the child.
func dialOnce(path string) int {
	resp, err := socketClient(path).Get("http://scanagent/api/queue/stats")
	if errors.Is(err, fs.ErrPermission) {
		return dialRefused
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return dialOther
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		fmt.Fprintln(os.Stderr, resp.Status)
		return dialOther
	}
	return dialAnswered
}

// TestSocketMode: the socket is 0600 in a directory its group cannot read,
// 0660 with the directory's group where the group may read it.
func TestSocketMode(t *testing.T) {
	for _, tc := range []struct {
		dirMode, want os.FileMode
	}{{0o700, 0o600}, {0o750, 0o660}, {0o710, 0o600}} {
		dir := filepath.Join(t.TempDir(), "data")
		if err := os.Mkdir(dir, tc.dirMode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(dir, tc.dirMode) // past the umask
		path := filepath.Join(dir, SocketFile)
		s, err := NewSocket(path, Options{Health: func() Health { return Health{OK: true} }})
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(path)
		s.Close()
		if err != nil || fi.Mode()&fs.ModeSocket == 0 || fi.Mode().Perm() != tc.want {
			t.Errorf("data_dir %04o: socket %v, %v; want a socket with mode %04o", tc.dirMode, fi.Mode(), err, tc.want)
		}
		if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("data_dir %04o: the socket file is left after Close: %v", tc.dirMode, err)
		}
	}
}

// TestSocketReplacesStaleFile: a socket file left by a killed agent does
// not stop the next start.
func TestSocketReplacesStaleFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), SocketFile)
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	opts := Options{Health: func() Health { return Health{OK: true} }}
	startSocket(t, path, opts)
	resp, err := socketClient(path).Get("http://scanagent/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz: %s", resp.Status)
	}
}

// TestSocketRefusesOtherUsers: a process of another user (nobody, 65534)
// gets nothing from the queue API unless data_dir lets it in: refused
// when data_dir is 0700, or 0755 with the socket 0600; answered when
// data_dir is 0750 with nobody's group.
func TestSocketRefusesOtherUsers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a child as another user")
	}
	if testing.Short() {
		t.Skip("starts a copy of the test binary; -short skips subprocess tests (under qemu it cannot be exec'ed directly)")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// A directory nobody can enter, holding a copy of the test binary
	// nobody can run (the build directory is root's only).
	root, err := os.MkdirTemp("", "admin-socket-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	child := filepath.Join(root, "admin.test")
	if err := os.WriteFile(child, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	const nobody = 65534
	for _, tc := range []struct {
		name    string
		dirMode os.FileMode
		dirGid  int
		want    int
	}{
		{"data_dir 0700", 0o700, 0, dialRefused},
		{"data_dir 0755, socket 0600", 0o755, 0, dialRefused},
		{"data_dir 0750 of nobody's group", 0o750, nobody, dialAnswered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, err := os.MkdirTemp(root, "data-")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(dir, 0, tc.dirGid); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tc.dirMode); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, SocketFile)
			startSocket(t, path, Options{Health: func() Health { return Health{OK: true} }, Queue: emptyQueue(t)})
			cmd := exec.CommandContext(context.Background(), child)
			cmd.Env = append(os.Environ(), dialEnv+"="+path)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
			out, err := cmd.CombinedOutput()
			code := cmd.ProcessState.ExitCode()
			if err != nil && code < 0 {
				t.Fatalf("child: %v", err)
			}
			if code != tc.want {
				t.Fatalf("child as nobody: exit %d (%s), want %d", code, out, tc.want)
			}
		})
	}
}
