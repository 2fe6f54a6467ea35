package queue

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

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
