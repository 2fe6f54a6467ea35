package admin

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// TokenFile is the name of the queue API's token file in data_dir.
const TokenFile = "admin.token"

// LoadOrCreateToken returns the token kept at path, creating it (32 random
// bytes, hex, mode 0600) when missing. A token file readable by other users
// is made 0600 again.
func LoadOrCreateToken(path string) (string, error) {
	tok, err := ReadToken(path)
	if err == nil {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(path, 0o600); err != nil {
				return "", fmt.Errorf("admin token %s: %w", path, err)
			}
		}
		return tok, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	tok = hex.EncodeToString(b)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return ReadToken(path) // another process was first
	}
	if err != nil {
		return "", fmt.Errorf("create admin token %s: %w", path, err)
	}
	_, err = f.WriteString(tok + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return "", fmt.Errorf("write admin token %s: %w", path, err)
	}
	return tok, nil
}

// ReadToken reads the token at path. An empty file is an error.
func ReadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("admin token %s is empty: delete it and restart the agent to make a new one", path)
	}
	return tok, nil
}

// tokenOK compares the request's bearer token with want in constant time.
func tokenOK(header, want string) bool {
	got, ok := strings.CutPrefix(header, "Bearer ")
	if !ok || want == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(want)) == 1
}
