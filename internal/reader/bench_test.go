package reader

import (
	"fmt"
	"testing"
	"time"

	"scanagent/internal/config"
)

// benchStream is 1,000 delimited scans, as a burst from a scanner delivers
// them, cut in 1 KiB reads.
func benchStream(term string) [][]byte {
	var all []byte
	for i := range 1000 {
		all = fmt.Appendf(all, "2026%05d,张伟,33010219900101%04d,学生%s", i, i, term)
	}
	var reads [][]byte
	for len(all) > 0 {
		n := min(len(all), 1024)
		reads = append(reads, all[:n])
		all = all[n:]
	}
	return reads
}

func BenchmarkFramers(b *testing.B) {
	for _, tc := range []struct{ framing, term string }{
		{framingLine, "\r\n"},
		{framingSTXETX, "\x03\x02"},
		{framingIdle, ""},
	} {
		b.Run(tc.framing, func(b *testing.B) {
			f, err := newFramer(tc.framing, 4096, 50*time.Millisecond)
			if err != nil {
				b.Fatal(err)
			}
			reads := benchStream(tc.term)
			size := 0
			for _, r := range reads {
				size += len(r)
			}
			b.SetBytes(int64(size))
			now := time.Now()
			for b.Loop() {
				for _, r := range reads {
					f.Feed(r, now)
				}
				f.Expire(now.Add(time.Second))
				f.Reset()
			}
		})
	}
}

func BenchmarkDecodeDelimited(b *testing.B) {
	cfg := config.DefaultReader()
	cfg.Name, cfg.Port = "bench", "/dev/null"
	r, err := build(cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	frame := []byte("202600001,张伟,330102199001010011,学生")
	for b.Loop() {
		if _, reason := decodeFrame(r.decoder, frame); reason != "" {
			b.Fatal(reason)
		}
	}
}
