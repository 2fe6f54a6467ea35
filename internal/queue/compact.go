package queue

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
)

// compactTxMaxSize bounds each transaction of the copy, so compacting a big
// file does not hold it all in memory.
const compactTxMaxSize = 16 << 20

// Compaction is what Compact did.
type Compaction struct {
	Before int64 `json:"before_bytes"`
	After  int64 `json:"after_bytes"`
}

// Compact rewrites the queue file at path without its free pages (a bbolt
// file never shrinks by itself: after a large backlog drains it keeps its
// high-water size). It copies every bucket, key and sequence into
// path.compact-tmp with bbolt.Compact, checks that every bucket holds as many
// keys as before, makes the copy durable and renames it over path.
//
// It holds the file's lock for the whole run, so it fails with ErrLocked
// within lockTimeout (0 = 1s) while the agent runs, and an agent started
// meanwhile waits, then opens the new file (see openBolt). A file that fails
// bbolt's consistency check is refused with ErrCorrupt: salvage it instead.
func Compact(path string, lockTimeout time.Duration) (c Compaction, err error) {
	return compact(path, lockTimeout, runtime.GOOS == "windows", nil)
}

// compact is Compact. With closeFirst, the source is closed (unmapped and
// unlocked) before the copy replaces it, because Windows cannot rename over
// a file that is open and mapped; the lock is then not held across the
// rename, so the file is checked unchanged since the copy (its last
// transaction ID) just before, and an agent that opened it meanwhile and
// wrote makes compact refuse rather than lose those writes. Elsewhere the
// lock is held until the rename is done. beforeReplace, if set, runs just
// before that check (tests of the order of operations).
func compact(path string, lockTimeout time.Duration, closeFirst bool, beforeReplace func()) (c Compaction, err error) {
	if lockTimeout == 0 {
		lockTimeout = time.Second
	}
	fi, err := os.Stat(path)
	if err != nil {
		return c, fmt.Errorf("compact %s: %w", path, err)
	}
	c.Before = fi.Size()
	if err := checkNotTruncated(path); err != nil {
		return c, fmt.Errorf("compact %s: %w; run `scanagent queue salvage` on it instead", path, err)
	}
	src, err := openBolt(path, Options{ReadOnly: true, LockTimeout: lockTimeout})
	if err != nil {
		return c, openError("compact", path, err)
	}
	srcOpen := true
	defer func() {
		if srcOpen {
			src.Close()
		}
	}()
	txid, _ := lastTxID(path)
	srcCounts, err := bucketCounts(src, true)
	if err != nil {
		return c, fmt.Errorf("compact %s: %w", path, err)
	}

	tmp := path + ".compact-tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return c, fmt.Errorf("compact: %w", err)
	}
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: lockTimeout, NoSync: true})
	if err != nil {
		return c, fmt.Errorf("compact: create %s: %w", tmp, err)
	}
	ok := false
	defer func() {
		if !ok {
			dst.Close()
			os.Remove(tmp)
		}
	}()
	if err := keepOwner(tmp); err != nil {
		return c, fmt.Errorf("compact: %w", err)
	}
	if err := copyInto(dst, src, compactTxMaxSize, srcCounts); err != nil {
		return c, fmt.Errorf("compact %s: %w", path, err)
	}
	if err := dst.Close(); err != nil {
		return c, fmt.Errorf("compact: close %s: %w", tmp, err)
	}
	ok = true // dst is closed; tmp is removed below on failure
	if closeFirst {
		srcOpen = false
		if err := src.Close(); err != nil {
			os.Remove(tmp)
			return c, fmt.Errorf("compact: close %s: %w", path, err)
		}
	}
	if beforeReplace != nil {
		beforeReplace()
	}
	if now, _ := lastTxID(path); closeFirst && now != txid {
		os.Remove(tmp)
		return c, fmt.Errorf("compact: %s was written while it was being copied (was the agent started?); it is left as it was: stop the agent and run compact again", path)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return c, fmt.Errorf("compact: replace %s: %w", path, err)
	}
	syncDir(filepath.Dir(path))
	if fi, err := os.Stat(path); err == nil {
		c.After = fi.Size()
	}
	return c, nil
}

// copyInto copies src into dst (opened with NoSync) in transactions of at
// most txMaxSize bytes, checks that every top-level bucket of the copy has
// the key count and sequence srcCounts says, and syncs dst. The original
// is left as it was.
func copyInto(dst, src *bolt.DB, txMaxSize int64, srcCounts map[string]bucketCount) error {
	if err := protect(func() error { return bolt.Compact(dst, src, txMaxSize) }); err != nil {
		return err
	}
	dstCounts, err := bucketCounts(dst, false)
	if err != nil {
		return fmt.Errorf("check the copy: %w", err)
	}
	for name, n := range srcCounts {
		if dstCounts[name] != n {
			return fmt.Errorf("the copy of bucket %s has %+v, the original %+v; the original is left as it was", name, dstCounts[name], n)
		}
	}
	if err := dst.Sync(); err != nil {
		return fmt.Errorf("sync the copy: %w", err)
	}
	return nil
}

type bucketCount struct {
	Keys int
	Seq  uint64
}

// bucketCounts counts the keys of every top-level bucket, after bbolt's
// consistency check when check is set.
func bucketCounts(db *bolt.DB, check bool) (map[string]bucketCount, error) {
	out := map[string]bucketCount{}
	err := protect(func() error {
		return db.View(func(tx *bolt.Tx) error {
			if check {
				for cerr := range tx.Check() {
					return fmt.Errorf("%w: %v; run `scanagent queue salvage` on it instead", ErrCorrupt, cerr)
				}
			}
			return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
				out[string(name)] = bucketCount{Keys: b.Stats().KeyN, Seq: b.Sequence()}
				return nil
			})
		})
	})
	return out, err
}

// The agent rewrites its own file once a backlog has drained out of a big
// one (shouldCompact): at least defaultCompactMinFree bytes free, and at
// most defaultCompactMaxLive in use, so the copy, which holds up writes, is
// short (about 0.1 s per 16 MB on a VM's disk).
const (
	defaultCompactMinFree = 64 << 20
	defaultCompactMaxLive = 16 << 20
	compactRetry          = 10 * time.Minute // after a rewrite failed
	// compactLiveTxMaxSize bounds each transaction of the agent's copy:
	// the copy's dirty pages are held in memory until each commit.
	compactLiveTxMaxSize = 1 << 20
)

// shouldCompact reports whether the file, size bytes as of the last
// commit, is to be rewritten without its free pages: a drained backlog left
// it mostly free. A bbolt file never shrinks by itself, and each commit
// writes the list of its free pages and keeps it in memory: after
// 10,000,000 records drained, 6 MB written per commit and about 90 MB of
// the agent's memory, until `queue compact`, which needs the agent
// stopped. The leader calls it after a commit with no journal entry
// waiting; the committer goroutine then compacts (compactNow) before it
// takes more work, so writers wait for the copy, not for each other.
//
// Not on Windows, which cannot rename over an open file: there `queue
// compact` (with the agent stopped) does it.
func (q *Queue) shouldCompact(size int64) bool {
	minFree, maxLive := cmp.Or(q.opts.compactMinFree, defaultCompactMinFree), cmp.Or(q.opts.compactMaxLive, defaultCompactMaxLive)
	if runtime.GOOS == "windows" || size < minFree || q.clock.Now().Before(q.compactAfter) {
		return false
	}
	st := q.db.Stats()
	free := int64(st.FreePageN+st.PendingPageN) * int64(q.db.Info().PageSize)
	return free >= minFree && size-free <= maxLive
}

// compactNow rewrites the file and tells Options.Compacted, which must not
// call the queue (it runs in the leader). A failure is tried again
// compactRetry later.
func (q *Queue) compactNow() {
	c, err := q.compactInPlace()
	if err != nil {
		q.compactAfter = q.clock.Now().Add(compactRetry)
	}
	if q.opts.Compacted != nil {
		q.opts.Compacted(c, err)
	}
}

// compactInPlace copies the open file into path.compact-tmp, opened (and
// so locked) first, renames the copy over path and swaps it in: path is
// always a whole file, locked by this queue, and a crash at any point
// leaves the old file or the new one. On failure the old file stays in use.
func (q *Queue) compactInPlace() (c Compaction, err error) {
	if fi, err := os.Stat(q.path); err == nil {
		c.Before = fi.Size()
	}
	tmp := q.path + ".compact-tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return c, fmt.Errorf("compact: %w", err)
	}
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second, NoSync: true, PreLoadFreelist: true})
	if err != nil {
		return c, fmt.Errorf("compact: create %s: %w", tmp, err)
	}
	swapped := false
	defer func() {
		if !swapped {
			dst.Close()
			os.Remove(tmp)
		}
	}()
	if err := keepOwner(tmp); err != nil {
		return c, fmt.Errorf("compact: %w", err)
	}
	srcCounts, err := bucketCounts(q.db, false)
	if err != nil {
		return c, fmt.Errorf("compact: %w", err)
	}
	if err := copyInto(dst, q.db, compactLiveTxMaxSize, srcCounts); err != nil {
		return c, fmt.Errorf("compact %s: %w", q.path, err)
	}
	dst.NoSync = false
	if err := os.Rename(tmp, q.path); err != nil {
		return c, fmt.Errorf("compact: replace %s: %w", q.path, err)
	}
	swapped = true
	syncDir(filepath.Dir(q.path))
	q.dbmu.Lock()
	old := q.db
	q.db = dst
	q.dbmu.Unlock()
	old.Close()
	if fi, err := os.Stat(q.path); err == nil {
		c.After = fi.Size()
	}
	debug.FreeOSMemory() // the old file's freelist
	return c, nil
}
