package logfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRotates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs", "scanagent.log")
	lf, err := Open(path, 100, 2)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Repeat("x", 39) + "\n"
	for range 10 {
		if _, err := lf.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	lf.Close()
	for _, p := range []string{path, path + ".1", path + ".2"} {
		fi, err := os.Stat(p)
		if err != nil || fi.Size() > 100 || fi.Size() == 0 {
			t.Fatalf("%s: %v, %v; want a file of at most 100 bytes", p, fi, err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", p, fi.Mode().Perm())
		}
	}
	if _, err := os.Stat(path + ".3"); !os.IsNotExist(err) {
		t.Fatalf("%s.3 exists; want only 2 kept", path)
	}
}

// After logrotate renamed the file, Reopen writes to a new file at path.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "scanagent.log")
	lf, err := Open(path, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	lf.Write([]byte("before\n"))
	if err := os.Rename(path, path+".old"); err != nil {
		t.Fatal(err)
	}
	lf.Write([]byte("still old\n"))
	if err := lf.Reopen(); err != nil {
		t.Fatal(err)
	}
	lf.Write([]byte("after\n"))
	old, _ := os.ReadFile(path + ".old")
	cur, _ := os.ReadFile(path)
	if string(old) != "before\nstill old\n" || string(cur) != "after\n" {
		t.Fatalf("old %q, new %q", old, cur)
	}
}
