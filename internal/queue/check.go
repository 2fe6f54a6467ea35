package queue

// The consistency check at Open, in memory that does not grow with the
// file.
//
// bbolt's check (tx.Check) walks every page of the file through the memory
// map and keeps a map entry per page: with a million scans pending that is
// a third of a gigabyte of resident pages while it runs, and several MB of
// heap. It is what finds a damaged file before bbolt reads a bad page at run
// time (a panic, which protect turns into ErrCorrupt) or writes over one
// (scans lost). Releasing the map's pages while it runs does not bound it:
// measured, it touches 36 MB in 16 ms, faster than any release schedule.
//
// So Open checks the file itself (fileCheck), with plain reads into a page
// buffer per level of the tree and a 1 MiB window for the leaves of one
// branch page, and a bitmap of a bit per page for what it has seen. The
// pages it reads stay in the page cache, never in the agent's RSS. It checks
// what bbolt's check checks:
//   - both meta pages say who they are, and the newest valid one is the one
//     bbolt opens (a torn last commit leaves the other);
//   - the freelist: sorted, unique, in range;
//   - the whole tree, every page: page IDs, kinds, elements within their
//     page, keys in order within a page and within the range its parent
//     gives it, no page reachable twice or both reachable and free;
//   - every page below the high-water mark reachable or free.
// It also counts each bucket's keys, which Open writes as the derived
// counters. When it cannot vouch for the file (errDoubt), bbolt's own check
// decides (checkFull), so a damaged file is moved aside as before, and only
// a file in doubt costs the memory of bbolt's check. FuzzCheckFile holds it
// to that: a file it vouches for passes bbolt's check.
//
// Neither check sees a changed byte inside a stored value (bbolt keeps no
// checksums): such a record no longer decodes and is moved to the dead
// letters when the uploader reaches it (see moveUnreadable).
//
// Its time grows with the file, like bbolt's: it reads every page once.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"runtime/debug"

	bolt "go.etcd.io/bbolt"
)

// checkOpen runs the open-time check: fileCheck, and bbolt's own when
// fileCheck cannot vouch for the file. Either way q.recount holds the
// buckets' key counts, which Open writes as the derived counters.
func (q *Queue) checkOpen() error {
	// The check's buffers and bitmaps are garbage once it is done: give
	// them back to the system rather than keep them as the heap's high
	// water mark.
	defer debug.FreeOSMemory()
	c, err := fileCheck(q.path)
	if err == nil {
		q.recount = c.counts
		return nil
	}
	if !errors.Is(err, errDoubt) {
		return err
	}
	return q.checkFull()
}

// checkFull runs bbolt's consistency check (which reads every record once)
// and counts each bucket's keys, for a file fileCheck cannot vouch for
// (Open releases the pages it touched).
func (q *Queue) checkFull() error {
	return protect(func() error {
		return q.db.View(func(tx *bolt.Tx) error {
			// Every error is taken, so that the check's goroutine has ended
			// before the transaction does.
			var first error
			for cerr := range tx.Check() {
				if first == nil {
					first = cerr
				}
			}
			if first != nil {
				return fmt.Errorf("%w: %v", ErrCorrupt, first)
			}
			// The derived counters, recounted here while pages are being
			// released (initBuckets writes them).
			q.recount = map[string]uint64{}
			for _, name := range [][]byte{bucketPending, bucketDead, bucketRejected, bucketDelivered} {
				if b := tx.Bucket(name); b != nil {
					q.recount[string(name)] = uint64(b.Stats().KeyN)
				}
			}
			return nil
		})
	})
}

func fnvSum(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

// errDoubt is fileCheck's answer when it finds something it cannot
// vouch for: bbolt's own check then decides.
var errDoubt = errors.New("the check at open cannot vouch for the file")

// bbolt's page layout (go.etcd.io/bbolt/internal/common), read here without
// the memory map: a page header (id, flags, count, overflow), then 16-byte
// elements, branch (pos, ksize, pgid) or leaf (flags, pos, ksize, vsize),
// each key pos bytes after its element.
const (
	pageHeader     = 16
	elemSize       = 16
	flagBranch     = 0x01
	flagLeaf       = 0x02
	flagMeta       = 0x04
	flagFreelist   = 0x10
	leafBucketFlag = 0x01
	noFreelist     = ^uint64(0)
	bucketHeader   = 16 // root pgid, sequence
)

// fileCheck checks the file at path with plain reads, never through the
// memory map, so that a bad page is an error here and never a fault, and
// memory does not grow with the file (see the top of this file): the meta
// pages, the freelist, the tree (walk), then that every page is reachable
// or free. It returns an error wrapping errDoubt when it cannot vouch for
// the file: the caller then runs bbolt's own check.
func fileCheck(path string) (c *skeleton, err error) {
	// It reads damaged bytes by design: should it fail on some it does not
	// expect, it doubts, and bbolt's check (under protect) decides.
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, doubt("%v", r)
		}
	}()
	return checkFile(path)
}

// checkFile is fileCheck without its recover.
func checkFile(path string) (c *skeleton, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	c = &skeleton{f: f, size: fi.Size(), counts: map[string]uint64{}, win: make([]byte, windowSize)}
	if err := c.metas(); err != nil {
		return nil, err
	}
	if err := c.freelist(); err != nil {
		return nil, err
	}
	if err := c.walk(c.root, nil, nil, nil); err != nil {
		return nil, err
	}
	// Every page is reachable or free, as bbolt's check requires.
	for p := uint64(2); p < c.hwm; p++ {
		if !bitSet(c.seen, p) && !bitSet(c.free, p) {
			return nil, doubt("page %d is neither reachable nor free", p)
		}
	}
	return c, nil
}

type skeleton struct {
	f        *os.File
	size     int64
	pageSize int64
	hwm      uint64 // pages below it are in use or free
	root     uint64
	flist    uint64
	txid     uint64
	seen     []uint64 // bitmap: reachable pages
	free     []uint64 // bitmap: free pages

	counts  map[string]uint64 // keys of each top-level bucket
	pool    [][]byte          // page buffers for reuse
	win     []byte            // the leaves of one branch page, read at once (prefetch)
	winFrom int64             // the file offset win holds from
	winN    int64             // how many bytes of win are valid
}

// windowSize bounds what prefetch reads at once.
const windowSize = 1 << 20

func bitSet(m []uint64, i uint64) bool { return m[i/64]&(1<<(i%64)) != 0 }
func setBit(m []uint64, i uint64)      { m[i/64] |= 1 << (i % 64) }

func doubt(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errDoubt}, a...)...)
}

// metas reads both meta pages: both must be valid and their transactions
// consecutive, as a cleanly closed file leaves them.
func (c *skeleton) metas() error {
	type meta struct{ pageSize, root, flist, pgid, txid uint64 }
	read := func(off int64) (meta, bool) {
		buf := make([]byte, metaSumEnd+8)
		if _, err := c.f.ReadAt(buf, off); err != nil {
			return meta{}, false
		}
		m := buf[metaOffset:]
		h := buf[:pageHeader]
		if binary.LittleEndian.Uint16(h[8:]) != flagMeta || binary.LittleEndian.Uint32(m[0:]) != boltMagic {
			return meta{}, false
		}
		if id := binary.LittleEndian.Uint64(h); id != 0 && id != 1 || id == 0 && off != 0 || id == 1 && off == 0 {
			return meta{}, false
		}
		if sum := fnvSum(buf[metaSumStart:metaSumEnd]); sum != binary.LittleEndian.Uint64(buf[metaSumEnd:]) {
			return meta{}, false
		}
		return meta{pageSize: uint64(binary.LittleEndian.Uint32(m[8:])), root: binary.LittleEndian.Uint64(m[16:]),
			flist: binary.LittleEndian.Uint64(m[32:]), pgid: binary.LittleEndian.Uint64(m[40:]),
			txid: binary.LittleEndian.Uint64(m[48:])}, true
	}
	// Both meta pages must say who they are (bbolt's check reads them as
	// pages 0 and 1); bbolt uses the newest one whose contents are valid,
	// and a torn last commit leaves the other one.
	header := func(off int64, id uint64) bool {
		h := make([]byte, pageHeader)
		_, err := c.f.ReadAt(h, off)
		return err == nil && binary.LittleEndian.Uint64(h) == id && binary.LittleEndian.Uint16(h[8:]) == flagMeta
	}
	if !header(0, 0) {
		return doubt("page 0 is not a meta page")
	}
	a, ok := read(0)
	if ok && (a.pageSize < 512 || a.pageSize > 1<<20) {
		return doubt("meta page 0: page size %d", a.pageSize)
	}
	if ok {
		if b, okB := read(int64(a.pageSize)); okB && b.pageSize == a.pageSize && b.txid > a.txid {
			a = b
		}
	} else {
		// Page 0 is torn: meta page 1, at the usual page sizes.
		for _, ps := range []int64{4096, 8192, 16384, 65536} {
			if a, ok = read(ps); ok && int64(a.pageSize) == ps {
				break
			}
			ok = false
		}
		if !ok {
			return doubt("no valid meta page")
		}
	}
	if !header(int64(a.pageSize), 1) {
		return doubt("page 1 is not a meta page")
	}
	c.pageSize, c.root, c.flist, c.hwm, c.txid = int64(a.pageSize), a.root, a.flist, a.pgid, a.txid
	if c.hwm < 2 || c.hwm > uint64(c.size/c.pageSize) {
		return doubt("high-water mark %d pages, file %d bytes", c.hwm, c.size)
	}
	words := (c.hwm + 63) / 64
	c.seen, c.free = make([]uint64, words), make([]uint64, words)
	setBit(c.seen, 0)
	setBit(c.seen, 1)
	return nil
}

// page reads page id with its overflow pages, checking its header, from
// the window when prefetch put it there.
func (c *skeleton) page(id uint64, want uint16) ([]byte, error) {
	if id < 2 || id >= c.hwm {
		return nil, doubt("page %d out of range [2, %d)", id, c.hwm)
	}
	off := int64(id) * c.pageSize
	buf := c.get(c.pageSize)
	if off >= c.winFrom && off+c.pageSize <= c.winFrom+c.winN {
		copy(buf, c.win[off-c.winFrom:])
	} else if _, err := c.f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		c.put(buf)
		return nil, doubt("page %d: %v", id, err)
	}
	if got := binary.LittleEndian.Uint64(buf); got != id {
		c.put(buf)
		return nil, doubt("page %d says it is page %d", id, got)
	}
	flags := binary.LittleEndian.Uint16(buf[8:])
	if flags&want == 0 || flags != flagBranch && flags != flagLeaf && flags != flagFreelist {
		c.put(buf)
		return nil, doubt("page %d: flags %#x, want %#x", id, flags, want)
	}
	over := uint64(binary.LittleEndian.Uint32(buf[12:]))
	limit := uint64(maxOverflow)
	if flags == flagFreelist {
		// The freelist of a large file that has drained is large: up to
		// one ID of 8 bytes per page below the high-water mark.
		limit = c.hwm*8/uint64(c.pageSize) + 2
	}
	if id+over >= c.hwm || over >= limit {
		c.put(buf)
		return nil, doubt("page %d: overflow of %d pages", id, over)
	}
	if over > 0 {
		c.put(buf)
		buf = make([]byte, int64(over+1)*c.pageSize)
		if _, err := c.f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
			return nil, doubt("page %d: %v", id, err)
		}
	}
	if flags != flagFreelist {
		if err := c.reach(id, over); err != nil {
			c.put(buf)
			return nil, err
		}
	}
	return buf, nil
}

// prefetch reads pages from…to into the window with one read, when they
// fit: the leaves of one branch page usually lie side by side.
func (c *skeleton) prefetch(from, to uint64) {
	n := int64(to-from+1) * c.pageSize
	if to < from || to >= c.hwm || n > int64(len(c.win)) {
		return
	}
	k, err := c.f.ReadAt(c.win[:n], int64(from)*c.pageSize)
	if err != nil && !errors.Is(err, io.EOF) {
		k = 0
	}
	c.winFrom, c.winN = int64(from)*c.pageSize, int64(k)
}

// maxOverflow bounds the pages a branch or leaf page may span: the queue
// stores small values (a record, a token), and a larger count read from a
// damaged header must not make the check allocate the file's size.
const maxOverflow = 4096

// get returns a buffer of n bytes, reused when a page's worth.
func (c *skeleton) get(n int64) []byte {
	if k := len(c.pool); k > 0 && n == c.pageSize {
		b := c.pool[k-1]
		c.pool = c.pool[:k-1]
		return b
	}
	return make([]byte, n)
}

// put gives back a buffer from get that nothing refers to any more.
func (c *skeleton) put(b []byte) {
	if int64(len(b)) == c.pageSize && len(c.pool) < 64 {
		c.pool = append(c.pool, b)
	}
}

// reach marks pages id…id+over reachable.
func (c *skeleton) reach(id, over uint64) error {
	for p := id; p <= id+over; p++ {
		if p < 2 || p >= c.hwm {
			return doubt("page %d out of range", p)
		}
		if bitSet(c.free, p) {
			return doubt("page %d is reachable and free", p)
		}
		if bitSet(c.seen, p) {
			return doubt("page %d is reachable twice", p)
		}
		setBit(c.seen, p)
	}
	return nil
}

// freelist reads the free page IDs: sorted, unique, in range.
func (c *skeleton) freelist() error {
	if c.flist == noFreelist {
		return doubt("no freelist in the file")
	}
	buf, err := c.page(c.flist, flagFreelist)
	if err != nil {
		return err
	}
	over := uint64(binary.LittleEndian.Uint32(buf[12:]))
	if err := c.reach(c.flist, over); err != nil {
		return err
	}
	n, at := uint64(binary.LittleEndian.Uint16(buf[10:])), uint64(pageHeader)
	if n == 0xFFFF {
		n, at = binary.LittleEndian.Uint64(buf[pageHeader:]), pageHeader+8
	}
	if n > uint64(len(buf))/8 || at+8*n > uint64(len(buf)) {
		return doubt("freelist: %d IDs do not fit in its pages", n)
	}
	var last uint64
	for i := range n {
		id := binary.LittleEndian.Uint64(buf[at+8*i:])
		if id < 2 || id >= c.hwm || id <= last || bitSet(c.seen, id) {
			return doubt("freelist: page %d", id)
		}
		setBit(c.free, id)
		last = id
	}
	return nil
}

// elem returns element i of a page: its key, and its pgid (branch) or
// flags and value (leaf).
func elem(buf []byte, i int) (key []byte, pgid uint64, flags uint32, val []byte, err error) {
	at := pageHeader + i*elemSize
	if at+elemSize > len(buf) {
		return nil, 0, 0, nil, doubt("element %d past its page", i)
	}
	e := buf[at:]
	leaf := binary.LittleEndian.Uint16(buf[8:])&flagLeaf != 0
	var pos, ksize, vsize int
	if leaf {
		flags = binary.LittleEndian.Uint32(e[0:])
		pos, ksize, vsize = int(binary.LittleEndian.Uint32(e[4:])), int(binary.LittleEndian.Uint32(e[8:])), int(binary.LittleEndian.Uint32(e[12:]))
	} else {
		pos, ksize = int(binary.LittleEndian.Uint32(e[0:])), int(binary.LittleEndian.Uint32(e[4:]))
		pgid = binary.LittleEndian.Uint64(e[8:])
	}
	if pos < 0 || ksize < 0 || vsize < 0 || at+pos+ksize+vsize > len(buf) {
		return nil, 0, 0, nil, doubt("element %d: key or value past its page", i)
	}
	key = buf[at+pos : at+pos+ksize]
	val = buf[at+pos+ksize : at+pos+ksize+vsize]
	return key, pgid, flags, val, nil
}

// keysInOrder checks a page's keys are strictly increasing and returns its
// element count.
func keysInOrder(buf []byte) (int, error) {
	n := int(binary.LittleEndian.Uint16(buf[10:]))
	var prev []byte
	for i := range n {
		k, _, _, _, err := elem(buf, i)
		if err != nil {
			return 0, err
		}
		if i > 0 && bytes.Compare(prev, k) >= 0 {
			return 0, doubt("keys out of order")
		}
		prev = k
	}
	return n, nil
}

// walk reads page id of the bucket called name (nil: the root bucket),
// whose keys must lie in [lo, hi) (nil: unbounded), then every child, and
// the buckets the root bucket's leaves name.
func (c *skeleton) walk(id uint64, name []byte, lo, hi []byte) error {
	buf, err := c.page(id, flagBranch|flagLeaf)
	if err != nil {
		return err
	}
	defer c.put(buf) // name, lo and hi of the children walked point into it
	n, err := keysInOrder(buf)
	if err != nil {
		return fmt.Errorf("page %d: %w", id, err)
	}
	if n > 0 {
		k0, _, _, _, _ := elem(buf, 0)
		kn, _, _, _, _ := elem(buf, n-1)
		if lo != nil && bytes.Compare(k0, lo) < 0 || hi != nil && bytes.Compare(kn, hi) >= 0 {
			return doubt("page %d: keys outside its parent's range", id)
		}
	}
	if binary.LittleEndian.Uint16(buf[8:])&flagLeaf != 0 {
		return c.leaf(buf, n, name)
	}
	if n == 0 {
		return doubt("branch page %d is empty", id)
	}
	lowest, highest := ^uint64(0), uint64(0)
	for i := range n {
		_, child, _, _, _ := elem(buf, i)
		lowest, highest = min(lowest, child), max(highest, child)
	}
	c.prefetch(lowest, highest)
	for i := range n {
		key, child, _, _, _ := elem(buf, i)
		next := hi
		if i+1 < n {
			next, _, _, _, _ = elem(buf, i+1)
		}
		if err := c.walk(child, name, key, next); err != nil {
			return err
		}
	}
	return nil
}

// leaf reads a leaf page of bucket name: it counts its keys and walks the
// buckets the root bucket names.
func (c *skeleton) leaf(buf []byte, n int, name []byte) error {
	for i := range n {
		k, _, flags, v, err := elem(buf, i)
		if err != nil {
			return err
		}
		if flags&leafBucketFlag == 0 {
			if name != nil {
				c.counts[string(name)]++
			}
			continue
		}
		if len(v) < bucketHeader {
			return doubt("bucket value too short")
		}
		if name != nil {
			return doubt("a nested bucket") // the queue makes none
		}
		if root := binary.LittleEndian.Uint64(v); root != 0 {
			if err := c.walk(root, k, nil, nil); err != nil {
				return err
			}
			continue
		}
		// An inline bucket: its leaf page follows the header.
		in := v[bucketHeader:]
		if len(in) < pageHeader || binary.LittleEndian.Uint16(in[8:])&flagLeaf == 0 {
			return doubt("inline bucket is not a leaf")
		}
		m, err := keysInOrder(in)
		if err != nil {
			return err
		}
		if err := c.leaf(in, m, k); err != nil {
			return err
		}
	}
	return nil
}
