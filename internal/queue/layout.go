package queue

// The file on disk: the buckets and their counters, opening the bbolt file
// safely (under recover, the lock, a file renamed under the opener), bbolt's
// meta page read directly to spot a truncated file, and moving a damaged
// file aside.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Bucket and meta key names. They are part of the file format.
var (
	bucketPending   = []byte("pending")
	bucketDead      = []byte("dead")
	bucketRejected  = []byte("rejected")
	bucketDelivered = []byte("delivered")
	bucketMeta      = []byte("meta")

	metaToken          = []byte("token")
	metaDeliveredTotal = []byte("delivered_total")
	metaPendingN       = []byte("pending_n")
	metaDeadN          = []byte("dead_n")
	metaRejectedN      = []byte("rejected_n")
	metaDeliveredN     = []byte("delivered_n") // history kept, not the total
)

func u64(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

func counter(tx *bolt.Tx, key []byte) uint64 {
	b := tx.Bucket(bucketMeta)
	if b == nil {
		return 0
	}
	v := b.Get(key)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func setCounter(tx *bolt.Tx, key []byte, n uint64) error {
	return tx.Bucket(bucketMeta).Put(key, u64(n))
}

// initBuckets creates the buckets a new file lacks and writes the derived
// counters from recount, each bucket's keys as the check at Open counted
// them: recomputed at every open, so that a file written by an older
// version, or repaired by hand, is always right.
func initBuckets(tx *bolt.Tx, recount map[string]uint64) error {
	for _, name := range [][]byte{bucketPending, bucketDead, bucketRejected, bucketDelivered, bucketMeta} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketMeta)
	for _, c := range []struct{ key, bucket []byte }{
		{metaPendingN, bucketPending}, {metaDeadN, bucketDead}, {metaRejectedN, bucketRejected},
		{metaDeliveredN, bucketDelivered},
	} {
		if err := meta.Put(c.key, u64(recount[string(c.bucket)])); err != nil {
			return err
		}
	}
	return nil
}

// openBolt opens the bbolt file under recover. It makes sure the file it
// locked is still the one at path: `queue compact` renames a new file over
// the old one, and an opener that was waiting for the old file's lock would
// otherwise write into a file that no longer has a name.
//
// bbolt reads the freelist while it opens (PreLoadFreelist makes a
// read-only open do so too, here rather than later in bbolt's own
// goroutine, as tx.Check would): a damaged count there reads past the map,
// a memory fault that recover catches only in a goroutine that asked for
// faults as panics.
func openBolt(path string, opts Options) (*bolt.DB, error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	for try := 0; ; try++ {
		var f *os.File
		var db *bolt.DB
		err := protect(func() error {
			var err error
			db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout, ReadOnly: opts.ReadOnly, PreLoadFreelist: true,
				OpenFile: func(name string, flag int, mode os.FileMode) (*os.File, error) {
					var err error
					f, err = os.OpenFile(name, flag, mode)
					return f, err
				}})
			return err
		})
		if err != nil {
			if db == nil && f != nil {
				f.Close() // a panic inside bolt.Open left the file open (and locked)
			}
			return nil, err
		}
		held, err1 := f.Stat()
		named, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, named) || try == 2 {
			return db, nil
		}
		db.Close()
	}
}

// openError classifies an error of openBolt: ErrLocked, ErrCorrupt or as is.
func openError(what, path string, err error) error {
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("%s %s: %w", what, path, ErrLocked)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		return fmt.Errorf("%s %s: %w: %v", what, path, ErrCorrupt, err)
	}
	return fmt.Errorf("%s %s: %w", what, path, err)
}

// bbolt's file header, read here only to spot a truncated file before bbolt
// maps it: a page past the end of the file is a memory fault (SIGBUS) when
// read, which no recover catches (bbolt's Check reads in its own goroutine).
const (
	boltMagic    = 0xED0CDAED
	metaOffset   = 16 // after the page header
	metaSumStart = metaOffset
	metaSumEnd   = metaOffset + 56 // the checksum covers the meta up to itself
)

// highWater returns the file size the newest valid meta page needs (page
// size × high-water page id). ok is false when no meta page is valid; bbolt
// then refuses the file itself.
func highWater(path string) (need int64, size int64, ok bool, err error) {
	need, size, _, ok, err = readMeta(path)
	return need, size, ok, err
}

// lastTxID returns the transaction ID of the newest valid meta page: it
// changes with every commit.
func lastTxID(path string) (uint64, bool) {
	_, _, txid, ok, err := readMeta(path)
	return txid, ok && err == nil
}

// readMeta reads the newest valid meta page: the file size it needs, and
// its transaction ID.
func readMeta(path string) (need, size int64, bestTx uint64, ok bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, 0, false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, 0, false, err
	}
	size = fi.Size()
	var read func(off int64)
	read = func(off int64) {
		buf := make([]byte, metaSumEnd+8)
		if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
			return
		}
		m := buf[metaOffset:]
		if binary.LittleEndian.Uint32(m[0:]) != boltMagic {
			return
		}
		h := fnv.New64a()
		h.Write(buf[metaSumStart:metaSumEnd])
		if h.Sum64() != binary.LittleEndian.Uint64(buf[metaSumEnd:]) {
			return
		}
		pageSize := int64(binary.LittleEndian.Uint32(m[8:]))
		pgid := binary.LittleEndian.Uint64(m[40:])
		txid := binary.LittleEndian.Uint64(m[48:])
		if !ok || txid > bestTx {
			need, bestTx, ok = pageSize*int64(pgid), txid, true
		}
		if off == 0 && pageSize > 0 {
			read(pageSize)
		}
	}
	read(0)
	if !ok {
		// The first meta page is damaged: try the usual page sizes.
		for _, ps := range []int64{4096, 8192, 16384, 65536} {
			read(ps)
			if ok {
				break
			}
		}
	}
	return need, size, bestTx, ok, nil
}

// checkNotTruncated returns an ErrCorrupt error when the file is shorter
// than its newest meta page says.
func checkNotTruncated(path string) error {
	need, size, ok, err := highWater(path)
	if err != nil || !ok || size == 0 || size >= need {
		return nil
	}
	return fmt.Errorf("%w: the file is truncated (%d bytes, its last transaction needs %d)", ErrCorrupt, size, need)
}

// syncDir makes a rename in dir durable (best effort: not every platform
// can fsync a directory).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// OpenOrQuarantine opens path; if the file is damaged it is renamed to
// path.corrupt-<timestamp> and a fresh queue is created in its place. The
// returned string is the quarantined file's path ("" when nothing was moved).
func OpenOrQuarantine(path string, opts Options) (*Queue, string, error) {
	q, err := Open(path, opts)
	if err == nil || !errors.Is(err, ErrCorrupt) {
		return q, "", err
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	moved, rerr := moveAside(path, path+".corrupt-"+now().UTC().Format("20060102T150405Z"))
	if rerr != nil {
		return nil, "", fmt.Errorf("%w; moving it aside failed too: %v", err, rerr)
	}
	// The journal's entry goes into the fresh file, unless the damaged one
	// says it holds it already (salvage would bring those scans again).
	opts.journalFloor = appliedJournalGen(moved)
	keepDeliveries(path, moved, opts.journalFloor)
	q, err2 := Open(path, opts)
	if err2 != nil {
		return nil, moved, err2
	}
	return q, moved, nil
}

// keepDeliveries writes, beside the moved file, the deliveries of a journal
// entry the moved file does not hold: applied to the fresh file they do
// nothing, and without them `queue salvage` would bring those delivered
// records back to be uploaded again. Only the deliveries: the entry's scans
// go into the fresh file. Best effort: without it, duplicates, never losses.
func keepDeliveries(path, moved string, floor uint64) {
	e, ok, err := readJournal(journalPath(path))
	if err != nil || !ok || e.Gen <= floor || len(e.Del) == 0 {
		return
	}
	f, err := os.OpenFile(journalPath(moved), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return
	}
	j := &journal{f: f}
	if j.write(&entry{Gen: e.Gen, Del: e.Del}) != nil {
		j.close()
		os.Remove(journalPath(moved))
		return
	}
	j.close()
	_ = keepOwner(journalPath(moved))
}

// moveAside renames path to name, or to name-2, name-3, … when name is
// taken: it never replaces a file (the clock of a terminal without a clock
// battery repeats itself, and an earlier quarantined file holds scans). A
// hard link claims the new name atomically; where the file system has none,
// the name is checked first (only this process moves the file: it holds no
// lock, but the agent is the only one that quarantines).
func moveAside(path, name string) (string, error) {
	for n := 1; ; n++ {
		to := name
		if n > 1 {
			to = fmt.Sprintf("%s-%d", name, n)
		}
		err := os.Link(path, to)
		if err == nil {
			if err := os.Remove(path); err != nil {
				os.Remove(to)
				return "", err
			}
			syncDir(filepath.Dir(path))
			return to, nil
		}
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		// No hard links here (FAT, some network file systems).
		if _, serr := os.Lstat(to); serr == nil {
			continue
		} else if !errors.Is(serr, fs.ErrNotExist) {
			return "", serr
		}
		if err := os.Rename(path, to); err != nil {
			return "", err
		}
		syncDir(filepath.Dir(path))
		return to, nil
	}
}

// appliedJournalGen reads journal_gen from a damaged queue file, or 0 when
// it cannot: then the journal's entry is applied again (duplicates, never
// losses).
func appliedJournalGen(path string) (gen uint64) {
	// A page past the end of a truncated file faults: a panic for protect.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	_ = protect(func() error {
		db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: time.Second})
		if err != nil {
			return err
		}
		defer db.Close()
		return db.View(func(tx *bolt.Tx) error { gen = counter(tx, metaJournalGen); return nil })
	})
	return gen
}
