package queue

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestJournalClearZeroesEntries: once an entry is applied and cleared, no
// byte of it (nor of a longer entry before it) is left in the file.
func TestJournalClearZeroesEntries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db-journal")
	// A file left by a version that cleared only the magic: bytes of an
	// old entry past the start.
	stale := make([]byte, journalSize)
	copy(stale[100:], "STALE-ENTRY-BYTES")
	if err := os.WriteFile(path, stale, 0o600); err != nil {
		t.Fatal(err)
	}
	j, _, _, err := openJournal(path, true)
	if err != nil || j == nil {
		t.Fatalf("openJournal: %v, %v", j, err)
	}
	defer j.close()
	item := func(id uint64, n int) journalItem {
		v, _ := json.Marshal(map[string]string{"name": "PERSONAL-" + strings.Repeat("x", n)})
		return journalItem{ID: id, V: v}
	}
	long := &entry{Gen: 1, Enq: []journalItem{item(1, 5000), item(2, 5000)}}
	short := &entry{Gen: 2, Enq: []journalItem{item(3, 10)}}
	j.clear()
	for _, e := range []*entry{long, short} {
		if err := j.write(e); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(path)
		if !bytes.Contains(b, []byte("PERSONAL-")) {
			t.Fatalf("entry %d not in the file", e.Gen)
		}
		j.clear()
		b, _ = os.ReadFile(path)
		if i := bytes.IndexFunc(b, func(r rune) bool { return r != 0 }); i >= 0 || len(b) != journalSize {
			t.Fatalf("after clearing entry %d: a non-zero byte at %d of %d", e.Gen, i, len(b))
		}
	}
	// A short entry written over a cleared long one leaves nothing of it.
	if err := j.write(long); err != nil {
		t.Fatal(err)
	}
	j.clear()
	if err := j.write(short); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if n := bytes.Count(b, []byte("PERSONAL-")); n != 1 {
		t.Fatalf("live short entry plus %d stale record(s) in the file", n-1)
	}
}
