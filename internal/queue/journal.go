package queue

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// The journal makes a scan durable with one sync instead of bbolt's two.
//
// A bbolt commit writes its pages and syncs, then writes the meta page and
// syncs again. The journal is a small preallocated file next to the
// database (path + "-journal") holding at most one entry: the records of one
// EnqueueBatch group and the IDs of one Deliver group, written over the
// start of the file and synced once (an overwrite of allocated blocks,
// which fdatasync flushes without touching the file's metadata). The
// callers are answered then; the committer applies the entry to bbolt
// right after, before it takes any other work, and the bbolt transaction
// records the entry's generation (meta key journal_gen). So:
//
//   - an entry whose generation is above journal_gen is acknowledged work
//     bbolt does not hold yet: Open applies it;
//   - an entry at or below it, or a torn one (bad checksum), is ignored;
//   - a new entry is written only once the previous one is applied, so the
//     file never holds anything else that matters.
//
// Records in an entry not yet applied are invisible to readers (Pending,
// List, Stats) for the length of one bbolt commit. When the entry cannot be
// applied (disk full), it stays in the journal, nothing new is written to
// it, and every write fails with ErrWrite until an apply succeeds.
//
// Work that does not fit in the journal, and every other kind of write, is
// a plain bbolt transaction.

const (
	journalSize   = 64 << 10
	journalHeader = 20 // magic, generation, length, CRC-32C
)

var (
	journalMagic   = []byte("SAJ1")
	metaJournalGen = []byte("journal_gen")
	crcTable       = crc32.MakeTable(crc32.Castagnoli)
	errTooBig      = errors.New("entry larger than the journal")
)

// entry is one journal entry: records to add to the pending bucket (their
// IDs already assigned) and delivered IDs to remove from it.
type entry struct {
	Gen uint64        `json:"-"`
	Enq []journalItem `json:"enq,omitempty"`
	Del []uint64      `json:"del,omitempty"`
}

type journalItem struct {
	ID uint64          `json:"id"`
	V  json.RawMessage `json:"v"` // the record as stored in the pending bucket
}

func journalPath(path string) string { return path + "-journal" }

type journal struct {
	f   *os.File
	gen uint64 // the generation of the last entry written or applied
	buf []byte
	// used is how many bytes at the start of the file may hold entry
	// bytes; clear zeroes them, so delivered records do not linger in the
	// file. Unknown (the whole file) after openJournal.
	used int
}

// journalZeros is what clear writes (never written to).
var journalZeros = make([]byte, journalSize)

// openJournal opens the journal and reads its entry (ok is false when there
// is none). The first time, it creates the file and writes its blocks once
// (zeros, synced). j is nil when the journal cannot be used for writing (a
// full disk, a read-only directory); err is set only when an existing
// journal could not be read, since it may hold acknowledged scans.
func openJournal(path string, create bool) (j *journal, e entry, ok bool, err error) {
	flag := os.O_RDWR
	if create {
		flag |= os.O_CREATE
	}
	f, err := os.OpenFile(path, flag, 0o600)
	if err != nil {
		if _, serr := os.Stat(path); errors.Is(serr, fs.ErrNotExist) {
			return nil, entry{}, false, nil
		}
		e, ok, err = readJournal(path)
		return nil, e, ok, err
	}
	if e, ok, err = readEntry(f); err != nil {
		f.Close()
		return nil, e, ok, err
	}
	if create && keepOwner(path) != nil {
		// Left as it is; the journal is only an optimisation: without it
		// writes go to bbolt.
		f.Close()
		return nil, e, ok, nil
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() < journalSize {
		zeros := make([]byte, journalSize-fi.Size())
		if _, err = f.WriteAt(zeros, fi.Size()); err == nil {
			if err = f.Sync(); err == nil {
				syncDir(filepath.Dir(path))
			}
		}
	}
	if err != nil {
		f.Close()
		return nil, e, ok, nil
	}
	return &journal{f: f, buf: make([]byte, 0, journalSize), used: journalSize}, e, ok, nil
}

// readJournal reads the entry in the journal at path; ok is false when there
// is none (no file, zeros, a torn write).
func readJournal(path string) (e entry, ok bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return entry{}, false, nil
	}
	if err != nil {
		return entry{}, false, err
	}
	defer f.Close()
	return readEntry(f)
}

func readEntry(f *os.File) (entry, bool, error) {
	head := make([]byte, journalHeader)
	if _, err := f.ReadAt(head, 0); err != nil {
		if errors.Is(err, io.EOF) {
			return entry{}, false, nil
		}
		return entry{}, false, err
	}
	if string(head[:4]) != string(journalMagic) {
		return entry{}, false, nil
	}
	gen := binary.BigEndian.Uint64(head[4:12])
	n := binary.BigEndian.Uint32(head[12:16])
	if n > journalSize-journalHeader {
		return entry{}, false, nil
	}
	body := make([]byte, n)
	if _, err := f.ReadAt(body, journalHeader); err != nil {
		if errors.Is(err, io.EOF) {
			return entry{}, false, nil
		}
		return entry{}, false, err
	}
	crc := crc32.Update(crc32.Checksum(head[4:16], crcTable), crcTable, body)
	if crc != binary.BigEndian.Uint32(head[16:20]) {
		return entry{}, false, nil // torn: never acknowledged
	}
	var e entry
	if err := json.Unmarshal(body, &e); err != nil {
		// Not ErrCorrupt: that would move the database aside. Written by
		// another version, perhaps; it is left for a person to look at.
		return entry{}, false, fmt.Errorf("journal entry %d is not readable by this version (%v); "+
			"move the file aside to start without it", gen, err)
	}
	e.Gen = gen
	return e, true, nil
}

// write stores e (its generation set) over the start of the file and syncs.
// It returns errTooBig, having written nothing, when e does not fit.
func (j *journal) write(e *entry) error {
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if len(body) > journalSize-journalHeader {
		return errTooBig
	}
	b := append(j.buf[:0], journalMagic...)
	b = binary.BigEndian.AppendUint64(b, e.Gen)
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	b = binary.BigEndian.AppendUint32(b, crc32.Update(crc32.Checksum(b[4:16], crcTable), crcTable, body))
	b = append(b, body...)
	j.buf = b[:0]
	j.used = max(j.used, len(b))
	if _, err := j.f.WriteAt(b, 0); err != nil {
		return err
	}
	if err := datasync(j.f); err != nil {
		return err
	}
	j.gen = e.Gen
	return nil
}

// clear marks the journal empty once its entry is applied, zeroing every
// byte an entry may have left (the records it held are in bbolt now, or
// delivered). It is not synced: journal_gen in bbolt already says the
// entry is applied; clearing only keeps a fresh database (after a damaged
// one was moved aside) from applying it a second time.
func (j *journal) clear() {
	if _, err := j.f.WriteAt(journalZeros[:j.used], 0); err == nil {
		j.used = 0
	}
}

func (j *journal) close() error { return j.f.Close() }
