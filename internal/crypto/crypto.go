// Package crypto encrypts ID numbers the way the campus open platform expects
// them in the idCard parameter of a scan record (docs/platform.md): AES-128 with the
// platform appId, left-padded with '0' to 16 bytes, as the key; ECB with
// PKCS#7 padding and standard base64 output by default (what Java's
// Cipher.getInstance("AES") produces), CBC and hex output for platforms that
// differ.
//
// It does not log, read configuration or hold secrets other than the key of
// the Cipher it builds. Its errors never contain a plaintext, a key or an IV,
// so callers may log them as they are.
package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Modes and encodings accepted in Options.
const (
	ModeECB = "ecb"
	ModeCBC = "cbc"

	EncodingBase64 = "base64"
	EncodingHex    = "hex"
)

// KeySize is the AES-128 key size, and the longest appId that makes a key.
const KeySize = aes.BlockSize

// ErrCiphertext is wrapped by every Decrypt error: the text is not a
// ciphertext this Cipher could have produced (bad encoding, bad length, bad
// padding, or made with another key).
var ErrCiphertext = errors.New("invalid ciphertext")

// Options selects the cipher mode and the text encoding. The zero value means
// ECB and base64, the platform's default.
type Options struct {
	// Mode is "ecb" (the default when "") or "cbc".
	Mode string
	// Encoding of the ciphertext: "base64" (standard alphabet, padded; the
	// default when "") or "hex" (lower case out, either case in).
	Encoding string
	// IV is used in CBC mode only: "" means the key is the IV. Otherwise it is
	// exactly 16 bytes taken as they are, or 32 hex digits.
	IV string
}

// Key returns the AES key for appID: appID left-padded with '0' to 16 bytes.
// An empty appID or one longer than 16 bytes is an error.
func Key(appID string) ([]byte, error) {
	switch {
	case appID == "":
		return nil, errors.New("crypto: app_id is empty: set [platform] app_id to the platform's appId")
	case len(appID) > KeySize:
		return nil, fmt.Errorf("crypto: app_id is %d bytes, longer than the %d an AES-128 key allows: check [platform] app_id", len(appID), KeySize)
	}
	return []byte(strings.Repeat("0", KeySize-len(appID)) + appID), nil
}

// Cipher encrypts and decrypts ID numbers with one key and one set of
// Options. It is safe for concurrent use.
type Cipher struct {
	block cipher.Block
	cbc   bool
	hex   bool
	iv    []byte // CBC only
}

// New returns a Cipher for appID (see Key) and opts.
func New(appID string, opts Options) (*Cipher, error) {
	key, err := Key(appID)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("crypto: %w", err) // unreachable: the key is 16 bytes
	}
	c := &Cipher{block: block}

	switch strings.ToLower(opts.Encoding) {
	case "", EncodingBase64:
	case EncodingHex:
		c.hex = true
	default:
		return nil, fmt.Errorf("crypto: unknown encoding %q: use %q or %q", opts.Encoding, EncodingBase64, EncodingHex)
	}

	switch strings.ToLower(opts.Mode) {
	case "", ModeECB:
		if opts.IV != "" {
			return nil, fmt.Errorf("crypto: an iv is set but mode is %q: the iv is used with mode %q only", ModeECB, ModeCBC)
		}
	case ModeCBC:
		c.cbc = true
		c.iv, err = parseIV(opts.IV, key)
		if err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("crypto: unknown mode %q: use %q or %q", opts.Mode, ModeECB, ModeCBC)
	}
	return c, nil
}

func parseIV(s string, key []byte) ([]byte, error) {
	switch len(s) {
	case 0:
		return key, nil
	case aes.BlockSize:
		return []byte(s), nil
	case 2 * aes.BlockSize:
		if iv, err := hex.DecodeString(s); err == nil {
			return iv, nil
		}
	}
	// The length is safe to print; the value is not.
	return nil, fmt.Errorf("crypto: iv is %d bytes: it must be 16 bytes or 32 hex digits (or empty to use the key)", len(s))
}

// String describes the Cipher without its key, so that printing one by
// mistake leaks nothing.
func (c *Cipher) String() string {
	mode, enc := ModeECB, EncodingBase64
	if c.cbc {
		mode = ModeCBC
	}
	if c.hex {
		enc = EncodingHex
	}
	return "crypto.Cipher(aes-128-" + mode + ", " + enc + ")"
}

// GoString is String, for %#v.
func (c *Cipher) GoString() string { return c.String() }

// Encrypt returns plain encrypted and encoded. Any string may be encrypted,
// the empty one included (it becomes one block of padding). The error is
// always nil today; it is there so that callers handle a future failure.
func (c *Cipher) Encrypt(plain string) (string, error) {
	bs := aes.BlockSize
	n := bs - len(plain)%bs
	buf := make([]byte, len(plain)+n)
	copy(buf, plain)
	for i := len(plain); i < len(buf); i++ {
		buf[i] = byte(n)
	}
	if c.cbc {
		cipher.NewCBCEncrypter(c.block, c.iv).CryptBlocks(buf, buf)
	} else {
		for i := 0; i < len(buf); i += bs {
			c.block.Encrypt(buf[i:i+bs], buf[i:i+bs])
		}
	}
	if c.hex {
		return hex.EncodeToString(buf), nil
	}
	return base64.StdEncoding.EncodeToString(buf), nil
}

// Decrypt reverses Encrypt. Every error wraps ErrCiphertext and says what was
// wrong (encoding, length or padding) without quoting the text, the key or
// what the text decrypted to.
func (c *Cipher) Decrypt(text string) (string, error) {
	var (
		buf []byte
		err error
	)
	if c.hex {
		buf, err = hex.DecodeString(text)
		if err != nil {
			return "", fmt.Errorf("crypto: %w: not hex", ErrCiphertext)
		}
	} else {
		buf, err = base64.StdEncoding.DecodeString(text)
		if err != nil {
			return "", fmt.Errorf("crypto: %w: not standard base64", ErrCiphertext)
		}
	}
	bs := aes.BlockSize
	if len(buf) == 0 || len(buf)%bs != 0 {
		return "", fmt.Errorf("crypto: %w: %d bytes is not a positive multiple of the %d-byte block", ErrCiphertext, len(buf), bs)
	}
	if c.cbc {
		cipher.NewCBCDecrypter(c.block, c.iv).CryptBlocks(buf, buf)
	} else {
		for i := 0; i < len(buf); i += bs {
			c.block.Decrypt(buf[i:i+bs], buf[i:i+bs])
		}
	}
	n := int(buf[len(buf)-1])
	bad := n == 0 || n > bs
	if !bad {
		for _, b := range buf[len(buf)-n:] {
			if int(b) != n {
				bad = true
				break
			}
		}
	}
	if bad {
		clear(buf)
		return "", fmt.Errorf("crypto: %w: bad padding (wrong key, mode or iv?)", ErrCiphertext)
	}
	return string(buf[:len(buf)-n]), nil
}
