package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrAlreadySalvaged is returned by Salvage for a file whose records were
// already copied into this queue.
var ErrAlreadySalvaged = errors.New("this file was already salvaged into the queue")

// salvageChunk is how many records one commit of Salvage writes.
const salvageChunk = 500

// Salvaged counts what Salvage copied and what it could not read.
type Salvaged struct {
	Pending int `json:"pending"` // records copied into pending
	Dead    int `json:"dead"`    // records copied into dead
	// Unreadable counts records whose value did not decode and damaged
	// stretches of a bucket skipped (a damaged page hides every record on
	// it: their number is unknown).
	Unreadable int `json:"unreadable"`
	// Damaged is true when bbolt's consistency check found problems or a
	// read panicked.
	Damaged bool `json:"damaged"`
}

// Salvage copies every readable pending and dead record of the damaged queue
// file at path into q, with new IDs at the end of q's queue (pending records
// stay pending, dead ones stay dead with their reason). It never writes to
// path. It opens the file read-only without loading its freelist, walks the
// two buckets with a cursor under recover (bbolt panics on a damaged page,
// and a page past the end of a truncated file is a memory fault, turned into
// a panic here) and, where a read fails, probes forward for the next
// readable key, so one bad page costs only the records on it.
//
// Salvage ignores MaxPending: these scans were acknowledged once and are
// never dropped. The file's SHA-256 is kept in q, so salvaging the same file
// twice returns ErrAlreadySalvaged instead of duplicating its records.
func Salvage(ctx context.Context, path string, q *Queue) (res Salvaged, err error) {
	if fi, err := os.Stat(path); err != nil {
		return res, fmt.Errorf("salvage: %w", err)
	} else if li, err := os.Stat(q.path); err == nil && os.SameFile(fi, li) {
		return res, fmt.Errorf("salvage: %s is the live queue itself", path)
	}
	sum, err := fileSum(path)
	if err != nil {
		return res, fmt.Errorf("salvage: %w", err)
	}
	marker := append([]byte("salvaged:"), sum...)
	var prog salvageProgress
	var progRaw []byte // the marker as read: a salvage running at the same time changes it
	if err := q.view(func(tx *bolt.Tx) error {
		progRaw = bytes.Clone(tx.Bucket(bucketMeta).Get(marker))
		prog = readProgress(progRaw)
		return nil
	}); err != nil {
		return res, err
	}
	if prog.Done {
		return res, fmt.Errorf("salvage %s: %w", path, ErrAlreadySalvaged)
	}

	// A page past the end of a truncated file faults: make that a panic
	// that protect turns into an error, for this goroutine only.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	open := path
	if need, size, ok, err := highWater(path); err == nil && ok && size < need {
		// Truncated: read a copy padded with zeros to its full size, where
		// a missing page is a page bbolt rejects, not a memory fault.
		res.Damaged = true
		tmp, err := paddedCopy(path, filepath.Dir(q.path), need)
		if err != nil {
			return res, fmt.Errorf("salvage %s: %w", path, err)
		}
		defer os.Remove(tmp)
		open = tmp
	}
	// The freelist is loaded here, in this goroutine, where a damaged one
	// is a panic; bbolt's check would otherwise load it in its own
	// goroutine, where a fault kills the process. Records are read without
	// it, so a file whose freelist is damaged is read anyway, unchecked.
	var db *bolt.DB
	openDB := func(preload bool) error {
		var f *os.File
		err := protect(func() error {
			var err error
			db, err = bolt.Open(open, 0o400, &bolt.Options{ReadOnly: true, Timeout: time.Second, PreLoadFreelist: preload,
				OpenFile: func(name string, flag int, mode os.FileMode) (*os.File, error) {
					var err error
					f, err = os.OpenFile(name, flag, mode)
					return f, err
				}})
			return err
		})
		if err != nil && db == nil && f != nil {
			f.Close() // a panic inside bolt.Open left the file open
		}
		return err
	}
	freelistOK := true
	if err = openDB(true); err != nil {
		freelistOK, res.Damaged = false, true
		err = openDB(false)
	}
	if err != nil {
		return res, fmt.Errorf("salvage %s: no readable root (both meta pages are damaged), nothing can be recovered: %w", path, err)
	}
	defer db.Close()
	tx, err := db.Begin(false)
	if err != nil {
		return res, fmt.Errorf("salvage %s: %w", path, err)
	}
	defer tx.Rollback()
	if freelistOK {
		if cerr := protect(func() error {
			// Every error is taken, so that the check's goroutine has
			// ended before the transaction does (and never blocks on a
			// send nobody reads).
			for range tx.Check() {
				res.Damaged = true
			}
			return nil
		}); cerr != nil {
			res.Damaged = true
		}
	}

	// The journal beside the file, if any, holds acknowledged work the file
	// may not: an entry above the file's journal_gen.
	var je entry
	if e, ok, err := readJournal(journalPath(path)); err == nil && ok {
		var gen uint64
		protect(func() error { gen = counter(tx, metaJournalGen); return nil })
		if e.Gen > gen {
			je = e
		}
	}
	delivered := make(map[uint64]bool, len(je.Del))
	for _, id := range je.Del {
		delivered[id] = true
	}
	seen := make(map[uint64]bool, len(je.Enq)) // journal records the file holds too
	for _, it := range je.Enq {
		seen[it.ID] = false
	}

	prog.From = filepath.Base(path)
	var chunk []Record
	var at salvagePos // of the last record in chunk
	flush := func(last bool) error {
		if len(chunk) == 0 && !last {
			return nil
		}
		recs := chunk
		chunk = nil
		next := prog
		next.At, next.Done = at, last
		v, err := json.Marshal(next)
		if err != nil {
			return err
		}
		err = q.write(ctx, func(tx *bolt.Tx) error {
			if !bytes.Equal(tx.Bucket(bucketMeta).Get(marker), progRaw) {
				// Another salvage of the same file committed meanwhile:
				// these records are its to copy.
				return fmt.Errorf("salvage %s: another salvage of this file is running or has finished: %w", path, ErrAlreadySalvaged)
			}
			pending := tx.Bucket(bucketPending)
			for i := range recs {
				r := recs[i]
				id, err := pending.NextSequence()
				if err != nil {
					return err
				}
				r.ID = id
				bucket, key := bucketPending, metaPendingN
				if r.DeadReason != "" {
					bucket, key = bucketDead, metaDeadN
				}
				if err := putRecord(tx, bucket, key, &r); err != nil {
					return err
				}
			}
			// The progress commits with the records: a rerun after an
			// interruption starts after the last record copied.
			return tx.Bucket(bucketMeta).Put(marker, v)
		})
		if err != nil {
			return err
		}
		prog, progRaw = next, v
		for _, r := range recs {
			if r.DeadReason != "" {
				res.Dead++
			} else {
				res.Pending++
			}
		}
		return nil
	}
	take := func(pos salvagePos, r Record) error {
		if !prog.At.before(pos) {
			return nil // copied by an earlier, interrupted run
		}
		chunk, at = append(chunk, r), pos
		if len(chunk) >= salvageChunk {
			return flush(false)
		}
		return nil
	}
	for si, st := range []State{StatePending, StateDead} {
		name, _ := stateBucket(st)
		var b *bolt.Bucket
		var seq uint64
		if err := protect(func() error {
			b = tx.Bucket(name)
			if b != nil {
				seq = b.Sequence()
			}
			return nil
		}); err != nil || b == nil {
			res.Damaged = true
			res.Unreadable++
			continue
		}
		if st == StateDead {
			// Dead records keep the pending sequence's IDs.
			if pb := tx.Bucket(bucketPending); pb != nil {
				protect(func() error { seq = max(seq, pb.Sequence()); return nil })
			}
		}
		n, werr := salvageBucket(b, seq, func(id uint64, v []byte) (bool, error) {
			var r Record
			if json.Unmarshal(v, &r) != nil || r.ID != id {
				return false, nil
			}
			if st == StateDead && r.DeadReason == "" {
				r.DeadReason = "dead (reason lost)"
			}
			if st == StatePending {
				r.DeadReason, r.DeadAt = "", time.Time{}
				if _, ok := seen[id]; ok {
					seen[id] = true
				}
				if delivered[id] {
					return true, nil // delivered: the journal says so
				}
			}
			r.NextAttempt = time.Time{}
			return true, take(salvagePos{si, id}, r)
		})
		if werr != nil {
			return res, fmt.Errorf("salvage %s: %w", path, werr)
		}
		if n > 0 {
			res.Damaged = true
			res.Unreadable += n
		}
	}
	for _, it := range je.Enq {
		var r Record
		if seen[it.ID] || delivered[it.ID] || json.Unmarshal(it.V, &r) != nil {
			continue
		}
		r.NextAttempt = time.Time{}
		if err := take(salvagePos{2, it.ID}, r); err != nil {
			return res, fmt.Errorf("salvage %s: %w", path, err)
		}
	}
	if err := flush(true); err != nil {
		return res, fmt.Errorf("salvage %s: %w", path, err)
	}
	if res.Pending > 0 {
		q.signal()
	}
	return res, nil
}

// salvageProgress is the marker Salvage keeps in the live queue's meta
// bucket for a file (by its SHA-256): how far it got, committed with each
// chunk of records, so a rerun copies each record once.
type salvageProgress struct {
	From string     `json:"from"`
	At   salvagePos `json:"at"`
	Done bool       `json:"done"`
}

// salvagePos orders the records Salvage copies: the pending bucket (0),
// then dead (1), then the journal beside the file (2), each by ID.
type salvagePos struct {
	Part int    `json:"part"`
	ID   uint64 `json:"id"`
}

func (p salvagePos) before(o salvagePos) bool {
	return p.Part < o.Part || p.Part == o.Part && p.ID < o.ID
}

// readProgress decodes a marker; an older version wrote the file's name
// once done.
func readProgress(v []byte) salvageProgress {
	var p salvageProgress
	if v == nil {
		return p
	}
	if json.Unmarshal(v, &p) != nil {
		return salvageProgress{From: string(v), Done: true}
	}
	return p
}
