//go:build linux || darwin || freebsd

package queue

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

const nobody = 65534

// chownAll gives dir and every file in it to uid/gid nobody, as the
// service's own user would own them.
func chownAll(t *testing.T, dir string) {
	t.Helper()
	filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		return os.Lchown(p, nobody, nobody)
	})
}

// assertOwned fails for every file in dir not owned by nobody.
func assertOwned(t *testing.T, dir, after string) {
	t.Helper()
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != nobody || st.Gid != nobody {
			t.Errorf("after %s: %s is owned by %d:%d, not by data_dir's owner %d:%d", after, p, st.Uid, st.Gid, nobody, nobody)
		}
		return nil
	})
}

// Item 6: maintenance run as root on a data dir owned by the service's
// user leaves every file owned by that user: compact, salvage, retry, drop,
// and an Open that creates queue.db (doctor's token check).
func TestRootKeepsDataDirOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "queue.db")
	q := mustOpen(t, path, Options{})
	ids := fill(t, q, 50)
	if err := q.Kill(ctx, ids[0], "x"); err != nil {
		t.Fatal(err)
	}
	q.Close()
	old := filepath.Join(dir, "queue.db.corrupt-20260101T000000Z")
	q = mustOpen(t, old, Options{})
	fill(t, q, 600)
	q.Close()
	damagePage(t, old, "x00300")
	chownAll(t, dir)

	if _, err := Compact(path, 0); err != nil {
		t.Fatal(err)
	}
	assertOwned(t, dir, "compact")

	q = mustOpen(t, path, Options{NoNewJournal: true})
	if _, err := q.RetryOne(ctx, Ref{N: ids[0]}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.DropOne(ctx, Ref{N: ids[1]}); err != nil {
		t.Fatal(err)
	}
	if _, err := Salvage(ctx, old, q); err != nil {
		t.Fatal(err)
	}
	q.Close()
	assertOwned(t, dir, "retry, drop and salvage")

	// A queue.db created by root (doctor keeping a token before the agent
	// ever ran), and the journal the agent creates.
	fresh := filepath.Join(dir, "fresh")
	if err := os.Mkdir(fresh, 0o700); err != nil {
		t.Fatal(err)
	}
	chownAll(t, fresh)
	q = mustOpen(t, filepath.Join(fresh, "queue.db"), Options{})
	if err := q.SaveToken(ctx, Token{AccessToken: "t"}); err != nil {
		t.Fatal(err)
	}
	q.Close()
	assertOwned(t, dir, "creating queue.db")
}
