package queue

// Reading a damaged file for Salvage: walking a bucket past damaged pages,
// and the copies and checksums it needs.

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"os"

	bolt "go.etcd.io/bbolt"
)

// salvageBucket calls fn for every readable key of b (8-byte IDs from 1 to
// maxID) in order, and returns how many damaged stretches it skipped. fn
// returns false for a value it cannot use; that counts as damage too. An
// error from fn stops the walk and is returned.
func salvageBucket(b *bolt.Bucket, maxID uint64, fn func(id uint64, v []byte) (bool, error)) (skipped int, err error) {
	maxID = min(maxID, 1<<62)
	next := uint64(1)
	for next <= maxID {
		last, got, stopped := uint64(0), false, false
		var fnErr error
		err := protect(func() error {
			c := b.Cursor()
			for k, v := c.Seek(u64(next)); k != nil; k, v = c.Next() {
				if len(k) != 8 {
					return errors.New("bad key")
				}
				id := binary.BigEndian.Uint64(k)
				if id < next || id > maxID || (got && id <= last) {
					return errors.New("key out of order")
				}
				ok, err := fn(id, v)
				if err != nil {
					fnErr = err
					return nil
				}
				if !ok {
					skipped++
				}
				last, got = id, true
			}
			stopped = true
			return nil
		})
		if fnErr != nil {
			return skipped, fnErr
		}
		if err == nil && stopped {
			return skipped, nil
		}
		if got && last < maxID {
			// The read failed after last: try again from just past it.
			next = last + 1
			if !readable(b, next) {
				skipped++
				next = nextReadable(b, next, maxID)
			}
			continue
		}
		skipped++
		next = nextReadable(b, next, maxID)
	}
	return skipped, nil
}

// readable reports whether a Seek to id works (lands on readable pages).
func readable(b *bolt.Bucket, id uint64) bool {
	return protect(func() error {
		c := b.Cursor()
		k, _ := c.Seek(u64(id))
		if k != nil && len(k) != 8 {
			return errors.New("bad key")
		}
		return nil
	}) == nil
}

// nextReadable finds the smallest ID above from (which is not readable) at
// which a Seek works, or maxID+1. A Seek fails for every ID routed to a
// damaged page and works from the first key of the next readable page on, so
// a doubling probe followed by a binary search finds that first key without
// skipping any readable record.
func nextReadable(b *bolt.Bucket, from, maxID uint64) uint64 {
	bad, step := from, uint64(1)
	good := maxID + 1
	for probe := from + 1; probe <= maxID; probe = bad + step {
		if readable(b, probe) {
			good = probe
			break
		}
		bad = probe
		step *= 2
	}
	for good-bad > 1 {
		mid := bad + (good-bad)/2
		if readable(b, mid) {
			good = mid
		} else {
			bad = mid
		}
	}
	return good
}

func fileSum(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return []byte(hex.EncodeToString(h.Sum(nil))), nil
}

// paddedCopy copies path into a new file in dir, extended with zeros to size.
func paddedCopy(path, dir string, size int64) (string, error) {
	src, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer src.Close()
	dst, err := os.CreateTemp(dir, "salvage-*.tmp")
	if err != nil {
		return "", err
	}
	_, err = io.Copy(dst, src)
	if err == nil {
		err = dst.Truncate(size)
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst.Name())
		return "", err
	}
	return dst.Name(), nil
}
