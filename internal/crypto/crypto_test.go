package crypto

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

type vector struct {
	line                             int
	appID, mode, encoding, iv, plain string
	cipher, command                  string
}

func (v vector) String() string {
	return fmt.Sprintf("vectors.txt:%d %s/%s/%s", v.line, v.mode, v.encoding, v.appID)
}

// readVectors reads testdata/vectors.txt, made by testdata/mkvectors.sh.
func readVectors(tb testing.TB) []vector {
	tb.Helper()
	f, err := os.Open("testdata/vectors.txt")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var (
		vs      []vector
		command string
		line    int
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line++
		text := sc.Text()
		if cmd, ok := strings.CutPrefix(text, "# "); ok {
			command = cmd
			continue
		}
		if text == "" {
			continue
		}
		fs := strings.Split(text, "\t")
		if len(fs) != 6 {
			tb.Fatalf("vectors.txt:%d: got %d fields, want 6", line, len(fs))
		}
		plain, err := strconv.Unquote(fs[4])
		if err != nil {
			tb.Fatalf("vectors.txt:%d: plaintext: %v", line, err)
		}
		vs = append(vs, vector{line, fs[0], fs[1], fs[2], fs[3], plain, fs[5], command})
		command = ""
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return vs
}

func mustNew(tb testing.TB, appID string, opts Options) *Cipher {
	tb.Helper()
	c, err := New(appID, opts)
	if err != nil {
		tb.Fatalf("New(%q, %+v): %v", appID, opts, err)
	}
	return c
}

func TestVectors(t *testing.T) {
	vs := readVectors(t)
	if len(vs) < 10 {
		t.Fatalf("got %d vectors, want at least 10", len(vs))
	}
	for _, v := range vs {
		t.Run(v.String(), func(t *testing.T) {
			if !strings.Contains(v.command, "openssl enc") {
				t.Errorf("vector has no openssl command above it")
			}
			c := mustNew(t, v.appID, Options{Mode: v.mode, Encoding: v.encoding, IV: v.iv})
			got, err := c.Encrypt(v.plain)
			if err != nil {
				t.Fatal(err)
			}
			if got != v.cipher {
				t.Errorf("Encrypt: got %s, want %s", got, v.cipher)
			}
			back, err := c.Decrypt(v.cipher)
			if err != nil {
				t.Fatal(err)
			}
			if back != v.plain {
				t.Errorf("Decrypt: got %q, want %q", back, v.plain)
			}
		})
	}
}

// TestPlatformExample is the example of the platform document (docs/platform.md),
// spelled out so that it survives any change to vectors.txt.
func TestPlatformExample(t *testing.T) {
	// printf 33010219900101123X | openssl enc -aes-128-ecb -K 30303030303030303030303030303031 -base64 -A
	const want = "GGX7LbvctIvkW/1lTUmQr2Od6uzbfHL8iBlSg+FOM78="
	key, err := Key("01")
	if err != nil {
		t.Fatal(err)
	}
	if string(key) != "0000000000000001" {
		t.Errorf("Key(01): got %q, want 0000000000000001", key)
	}
	for _, opts := range []Options{{}, {Mode: "ecb", Encoding: "base64"}, {Mode: "ECB", Encoding: "Base64"}} {
		got, err := mustNew(t, "01", opts).Encrypt("33010219900101123X")
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%+v: got %s, want %s", opts, got, want)
		}
	}
}

func TestKey(t *testing.T) {
	for _, tc := range []struct {
		appID, want string
		ok          bool
	}{
		{"01", "0000000000000001", true},
		{"1", "0000000000000001", true},
		{"1234567890abcdef", "1234567890abcdef", true},
		{"abc", "0000000000000abc", true},
		{"", "", false},
		{"1234567890abcdefg", "", false},
	} {
		got, err := Key(tc.appID)
		if (err == nil) != tc.ok {
			t.Errorf("Key(%q): got error %v, want ok=%v", tc.appID, err, tc.ok)
			continue
		}
		if string(got) != tc.want {
			t.Errorf("Key(%q): got %q, want %q", tc.appID, got, tc.want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	const secretIV = "SECRET-IV-VALUE!" // 16 bytes
	for _, tc := range []struct {
		name  string
		appID string
		opts  Options
	}{
		{"empty app id", "", Options{}},
		{"long app id", "12345678901234567", Options{}},
		{"mode", "01", Options{Mode: "gcm"}},
		{"encoding", "01", Options{Encoding: "base32"}},
		{"iv with ecb", "01", Options{IV: secretIV}},
		{"short iv", "01", Options{Mode: "cbc", IV: "SECRET"}},
		{"iv 32 not hex", "01", Options{Mode: "cbc", IV: secretIV + secretIV}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.appID, tc.opts)
			if err == nil {
				t.Fatalf("got %v, want an error", c)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error %q quotes the iv", err)
			}
		})
	}
}

func TestIVForms(t *testing.T) {
	raw := mustNew(t, "01", Options{Mode: "cbc", IV: "fedcba9876543210"})
	hx := mustNew(t, "01", Options{Mode: "cbc", IV: hex.EncodeToString([]byte("fedcba9876543210"))})
	keyIV := mustNew(t, "01", Options{Mode: "cbc"})
	explicitKeyIV := mustNew(t, "01", Options{Mode: "cbc", IV: "0000000000000001"})
	for _, p := range []string{"", "33010219900101123X"} {
		a, _ := raw.Encrypt(p)
		b, _ := hx.Encrypt(p)
		if a != b {
			t.Errorf("iv as text and as hex: got %s and %s, want equal", a, b)
		}
		c, _ := keyIV.Encrypt(p)
		d, _ := explicitKeyIV.Encrypt(p)
		if c != d {
			t.Errorf("iv empty and iv = key: got %s and %s, want equal", c, d)
		}
	}
}

func TestDecryptErrors(t *testing.T) {
	const plain = "33010219900101123X"
	ecb := mustNew(t, "01", Options{})
	good, _ := ecb.Encrypt(plain)
	raw, _ := base64.StdEncoding.DecodeString(good)
	other := mustNew(t, "02", Options{})
	hexC := mustNew(t, "01", Options{Encoding: "hex"})

	for _, tc := range []struct {
		name string
		c    *Cipher
		text string
	}{
		{"empty", ecb, ""},
		{"not base64", ecb, "!!!not base64!!!"},
		{"url alphabet", ecb, strings.NewReplacer("+", "-", "/", "_").Replace(good)},
		{"unpadded base64", ecb, strings.TrimRight(good, "=")},
		{"short", ecb, base64.StdEncoding.EncodeToString(raw[:15])},
		{"not block multiple", ecb, base64.StdEncoding.EncodeToString(raw[:20])},
		{"wrong key", other, good},
		{"truncated to first block", ecb, base64.StdEncoding.EncodeToString(raw[:16])},
		{"not hex", hexC, "zz" + strings.Repeat("0", 30)},
		{"odd hex", hexC, "abc"},
		{"base64 given to hex", hexC, good},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.c.Decrypt(tc.text)
			if err == nil {
				t.Fatalf("got %q, want an error", got)
			}
			if !errors.Is(err, ErrCiphertext) {
				t.Errorf("got %v, want it to wrap ErrCiphertext", err)
			}
			msg := err.Error()
			for _, secret := range []string{plain, "33010219", "0000000000000001", "0000000000000002"} {
				if strings.Contains(msg, secret) {
					t.Errorf("error %q contains %q", msg, secret)
				}
			}
		})
	}
}

func TestCipherStringHidesKey(t *testing.T) {
	c := mustNew(t, "1234567890abcdef", Options{Mode: "cbc", Encoding: "hex", IV: "fedcba9876543210"})
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c)} {
		if strings.Contains(s, "1234567890abcdef") || strings.Contains(s, "fedcba") {
			t.Errorf("%q shows the key or iv", s)
		}
	}
	if got, want := c.String(), "crypto.Cipher(aes-128-cbc, hex)"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, opts := range allOptions() {
		c := mustNew(t, "20230001", opts)
		for n := range 70 {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(r.UintN(256))
			}
			enc, err := c.Encrypt(string(b))
			if err != nil {
				t.Fatal(err)
			}
			if want := (n/16 + 1) * 16; decodedLen(t, opts, enc) != want {
				t.Errorf("%+v n=%d: got %d bytes of ciphertext, want %d", opts, n, decodedLen(t, opts, enc), want)
			}
			dec, err := c.Decrypt(enc)
			if err != nil {
				t.Fatalf("%+v n=%d: %v", opts, n, err)
			}
			if dec != string(b) {
				t.Errorf("%+v n=%d: got %x, want %x", opts, n, dec, b)
			}
		}
	}
}

func decodedLen(tb testing.TB, opts Options, s string) int {
	tb.Helper()
	return len(decode(tb, opts, s))
}

func decode(tb testing.TB, opts Options, s string) []byte {
	tb.Helper()
	var (
		b   []byte
		err error
	)
	if opts.Encoding == EncodingHex {
		b, err = hex.DecodeString(s)
	} else {
		b, err = base64.StdEncoding.DecodeString(s)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func allOptions() []Options {
	return []Options{
		{},
		{Encoding: EncodingHex},
		{Mode: ModeCBC},
		{Mode: ModeCBC, Encoding: EncodingHex},
		{Mode: ModeCBC, IV: "fedcba9876543210"},
	}
}

// TestOpenSSL compares Encrypt and Decrypt with openssl enc for random appIds,
// plaintexts and options, when openssl is installed.
func TestOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not on PATH")
	}
	n := 12
	if testing.Short() {
		n = 4
	}
	r := rand.New(rand.NewPCG(uint64(os.Getpid()), 7))
	const alnum = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	randString := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = alnum[r.IntN(len(alnum))]
		}
		return string(b)
	}
	for i := range n {
		appID := randString(1 + r.IntN(16))
		plain := make([]byte, r.IntN(50))
		for j := range plain {
			plain[j] = byte(r.UintN(256)) // any bytes, not only text
		}
		opts := allOptions()[r.IntN(len(allOptions()))]
		if opts.Mode == ModeCBC && r.IntN(2) == 0 {
			opts.IV = randString(16)
		}
		name := fmt.Sprintf("%d/%s/%+v", i, appID, opts)
		t.Run(name, func(t *testing.T) {
			key, _ := Key(appID)
			args := []string{"enc", "-aes-128-ecb", "-K", hex.EncodeToString(key)}
			if opts.Mode == ModeCBC {
				iv := key
				if opts.IV != "" {
					iv = []byte(opts.IV)
				}
				args = []string{"enc", "-aes-128-cbc", "-K", hex.EncodeToString(key), "-iv", hex.EncodeToString(iv)}
			}
			cmd := exec.Command(openssl, args...)
			cmd.Stdin = bytes.NewReader(plain)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("openssl %s: %v", strings.Join(args, " "), err)
			}
			want := base64.StdEncoding.EncodeToString(out)
			if opts.Encoding == EncodingHex {
				want = hex.EncodeToString(out)
			}
			c := mustNew(t, appID, opts)
			got, err := c.Encrypt(string(plain))
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("Encrypt %x: got %s, want %s (openssl %s)", plain, got, want, strings.Join(args, " "))
			}
			back, err := c.Decrypt(want)
			if err != nil {
				t.Fatal(err)
			}
			if back != string(plain) {
				t.Errorf("Decrypt of openssl's output: got %x, want %x", back, plain)
			}
		})
	}
}

func FuzzDecrypt(f *testing.F) {
	for _, s := range []string{"", "GGX7LbvctIvkW/1lTUmQr2Od6uzbfHL8iBlSg+FOM78=", "CPQ+Ou+uDGA2PnWcUngjFA==", "00", "1865fb2dbbdcb48be45bfd654d4990af", "====", "\x00\xff"} {
		for m := range uint8(4) {
			f.Add("01", m, s)
		}
	}
	f.Fuzz(func(t *testing.T, appID string, m uint8, text string) {
		opts := allOptions()[int(m)%len(allOptions())]
		c, err := New(appID, opts)
		if err != nil {
			return
		}
		got, err := c.Decrypt(text)
		if err != nil {
			if !errors.Is(err, ErrCiphertext) {
				t.Errorf("got %v, want it to wrap ErrCiphertext", err)
			}
			return
		}
		// What decrypts must encrypt back to the same bytes (the text itself
		// may differ: hex case, ignored newlines, unused base64 bits).
		again, err := c.Encrypt(got)
		if err != nil {
			t.Fatal(err)
		}
		if a, b := decode(t, opts, again), decode(t, opts, text); !bytes.Equal(a, b) {
			t.Errorf("Encrypt(Decrypt(%q)) = %q: got bytes %x, want %x", text, again, a, b)
		}
	})
}

func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{"", "33010219900101123X", "1234567890123456", "张三丰", "\x00\x10\x10"} {
		f.Add("01", uint8(0), s)
		f.Add("1234567890abcdef", uint8(4), s)
	}
	f.Fuzz(func(t *testing.T, appID string, m uint8, plain string) {
		opts := allOptions()[int(m)%len(allOptions())]
		c, err := New(appID, opts)
		if err != nil {
			if appID != "" && len(appID) <= KeySize {
				t.Fatalf("New(%q): %v", appID, err)
			}
			return
		}
		enc, err := c.Encrypt(plain)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Decrypt(enc)
		if err != nil {
			t.Fatal(err)
		}
		if got != plain {
			t.Errorf("got %q, want %q", got, plain)
		}
	})
}

func BenchmarkCipher(b *testing.B) {
	for _, opts := range []Options{{}, {Mode: "cbc", Encoding: "hex"}} {
		name := opts.Mode + "/" + opts.Encoding
		if name == "/" {
			name = "default"
		}
		c, err := New("01", opts)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("Encrypt/"+name, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.Encrypt("33010219900101001X"); err != nil {
					b.Fatal(err)
				}
			}
		})
		enc, _ := c.Encrypt("33010219900101001X")
		b.Run("Decrypt/"+name, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.Decrypt(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
