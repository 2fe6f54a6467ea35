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
// database (path + "-journal") with two slots; an entry is written over
// the start of slot Gen%2 and synced once (an overwrite of allocated
// blocks, which fdatasync flushes without touching the file's metadata).
// The callers are answered then. The bbolt transaction that applies an
// entry records its generation (meta key journal_gen). So:
//
//   - the valid entry (checksum good) with the highest generation is the
//     journal's entry; one whose generation is above journal_gen is
//     acknowledged work bbolt does not hold yet: Open applies it;
//   - an entry at or below journal_gen, or a torn one, is ignored;
//   - a new entry is written only when the previous one is applied, or
//     when it takes the previous one in whole (held deliveries, below), so
//     the journal's entry always holds everything acknowledged that bbolt
//     lacks. A write goes to the other slot than the last one, so a torn
//     write leaves the previous entry readable.
//
// An entry with records (an EnqueueBatch group) is applied right after its
// write, before any other work: its records are invisible to readers
// (Pending, List, Stats) for the length of one bbolt commit.
//
// Held deliveries. An entry of delivered IDs alone is held back: the next
// entry takes its IDs with its own, until maxHeld IDs or holdFor have
// gone by, another kind of write comes, or a reader other than the
// uploader's looks (view applies it first). A long drain therefore costs
// a journal sync per group of deliveries and one bbolt commit per few
// thousand, not one per group: a bbolt commit writes the whole freelist,
// which grows with every page a drain frees, so a commit per group made
// the end of a large backlog drain at a fraction of its start rate. The
// uploader's reads (Pending, PendingRecord) leave out the held IDs.
//
// When an entry cannot be applied (disk full), it stays in the journal,
// nothing new is written to it, and every write fails with ErrWrite until
// an apply succeeds.
//
// Work that does not fit in a slot, and every other kind of write, is a
// plain bbolt transaction (which applies the journal's entry first).

const (
	journalSlot   = 64 << 10
	journalSize   = 2 * journalSlot
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
	// used is how many bytes at the start of each slot may hold entry
	// bytes; clear zeroes them, so delivered records do not linger in the
	// file. Unknown (the whole slot) after openJournal.
	used [2]int
}

// journalZeros is what clear writes (never written to).
var journalZeros = make([]byte, journalSlot)

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
	return &journal{f: f, buf: make([]byte, 0, journalSlot), used: [2]int{journalSlot, journalSlot}}, e, ok, nil
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

// readEntry returns the journal's entry: the valid one of the two slots
// with the highest generation. A journal written by a version with one
// slot has its entry in the first.
func readEntry(f *os.File) (e entry, ok bool, err error) {
	for slot := range 2 {
		s, sok, err := readSlot(f, int64(slot)*journalSlot)
		if err != nil {
			return entry{}, false, err
		}
		if sok && (!ok || s.Gen > e.Gen) {
			e, ok = s, true
		}
	}
	return e, ok, nil
}

func readSlot(f *os.File, off int64) (entry, bool, error) {
	head := make([]byte, journalHeader)
	if _, err := f.ReadAt(head, off); err != nil {
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
	if n > journalSlot-journalHeader {
		return entry{}, false, nil
	}
	body := make([]byte, n)
	if _, err := f.ReadAt(body, off+journalHeader); err != nil {
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

// write stores e (its generation set) over the start of slot e.Gen%2 and
// syncs. It returns errTooBig, having written nothing, when e does not fit.
func (j *journal) write(e *entry) error {
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if len(body) > journalSlot-journalHeader {
		return errTooBig
	}
	b := append(j.buf[:0], journalMagic...)
	b = binary.BigEndian.AppendUint64(b, e.Gen)
	b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
	b = binary.BigEndian.AppendUint32(b, crc32.Update(crc32.Checksum(b[4:16], crcTable), crcTable, body))
	b = append(b, body...)
	j.buf = b[:0]
	slot := e.Gen % 2
	j.used[slot] = max(j.used[slot], len(b))
	if _, err := j.f.WriteAt(b, int64(slot)*journalSlot); err != nil {
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
	for slot := range j.used {
		j.clearSlot(uint64(slot))
	}
}

// clearSlot zeroes the slot of generation gen.
func (j *journal) clearSlot(gen uint64) {
	slot := gen % 2
	if _, err := j.f.WriteAt(journalZeros[:j.used[slot]], int64(slot)*journalSlot); err == nil {
		j.used[slot] = 0
	}
}

func (j *journal) close() error { return j.f.Close() }
