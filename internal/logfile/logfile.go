// Package logfile is a size-rotated log file for services that have no
// journal (Windows): when the file passes MaxSize it is renamed to NAME.1
// (older ones shift to NAME.2 …) and a new one is started; Reopen starts a
// new file after an outside tool moved it (SIGHUP). It does not format log
// lines.
package logfile

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// File is an io.WriteCloser safe for concurrent use.
type File struct {
	path    string
	maxSize int64
	keep    int

	mu   sync.Mutex
	f    *os.File
	size int64
}

// Open appends to path (creating it and its directory, mode 0600), rotating
// at maxSize bytes (0 = 10 MiB) and keeping keep old files (0 = 3).
func Open(path string, maxSize int64, keep int) (*File, error) {
	if maxSize <= 0 {
		maxSize = 10 << 20
	}
	if keep <= 0 {
		keep = 3
	}
	lf := &File{path: path, maxSize: maxSize, keep: keep}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	if err := lf.open(); err != nil {
		return nil, err
	}
	return lf, nil
}

func (lf *File) open() error {
	f, err := os.OpenFile(lf.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("log file: %w", err)
	}
	lf.f, lf.size = f, fi.Size()
	return nil
}

// Write appends p, rotating first if p would pass the size limit.
func (lf *File) Write(p []byte) (int, error) {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if lf.f == nil {
		return 0, os.ErrClosed
	}
	if lf.size > 0 && lf.size+int64(len(p)) > lf.maxSize {
		if err := lf.rotate(); err != nil {
			return 0, err
		}
	}
	n, err := lf.f.Write(p)
	lf.size += int64(n)
	return n, err
}

func (lf *File) rotate() error {
	lf.f.Close()
	lf.f = nil
	for i := lf.keep - 1; i >= 1; i-- {
		os.Rename(fmt.Sprintf("%s.%d", lf.path, i), fmt.Sprintf("%s.%d", lf.path, i+1))
	}
	if err := os.Rename(lf.path, lf.path+".1"); err != nil {
		return fmt.Errorf("log file rotate: %w", err)
	}
	return lf.open()
}

// Reopen closes the file and opens path again: after an outside tool
// (logrotate) renamed it, writing goes on in a new file at path. On
// failure the old file is kept open.
func (lf *File) Reopen() error {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	old := lf.f
	if err := lf.open(); err != nil {
		lf.f = old
		return err
	}
	if old != nil {
		old.Close()
	}
	return nil
}

// Close closes the file.
func (lf *File) Close() error {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if lf.f == nil {
		return nil
	}
	err := lf.f.Close()
	lf.f = nil
	return err
}
