package reader

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.bug.st/serial"

	"scanagent/internal/config"
	"scanagent/internal/queue"
)

// waitTimeout bounds every wait in these tests; waits poll and return as
// soon as the condition holds.
const waitTimeout = 5 * time.Second

// memStore is an in-memory Store.
type memStore struct {
	mu         sync.Mutex
	nextID     uint64
	records    []queue.Record
	rejections []queue.Rejection
	failNext   atomic.Bool // when set, Enqueue fails
	batches    []int       // the size of each EnqueueBatch call
}

var errDiskFull = errors.New("disk full")

func (s *memStore) Enqueue(_ context.Context, r *queue.Record) error {
	if s.failNext.Load() {
		return errDiskFull
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	r.ID = s.nextID
	s.records = append(s.records, *r)
	return nil
}

func (s *memStore) EnqueueBatch(ctx context.Context, recs []*queue.Record) (int, error) {
	s.mu.Lock()
	s.batches = append(s.batches, len(recs))
	s.mu.Unlock()
	for i, r := range recs {
		if err := s.Enqueue(ctx, r); err != nil {
			return i, err
		}
	}
	return len(recs), nil
}

func (s *memStore) Reject(_ context.Context, rj *queue.Rejection) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	rj.ID = queue.RejectedID(s.nextID)
	rj.Raw = bytes.Clone(rj.Raw)
	s.rejections = append(s.rejections, *rj)
	return nil
}

func (s *memStore) Records() []queue.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]queue.Record(nil), s.records...)
}

func (s *memStore) Batches() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.batches...)
}

func (s *memStore) Rejections() []queue.Rejection {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]queue.Rejection(nil), s.rejections...)
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2024, 9, 1, 8, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer collects log output from the reader's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// count returns how many log lines contain s.
func (b *syncBuffer) count(s string) int {
	n := 0
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

func testConfig(port string) config.Reader {
	cfg := config.DefaultReader()
	cfg.Name = "gate-1"
	cfg.Port = port
	cfg.TermName = "东湖食堂 1 号机"
	cfg.TermSn = "ZAFU-0001"
	cfg.UserType = "9"
	cfg.AckOK = "07"
	cfg.AckFail = "15 0d"
	return cfg
}

// fakeEncrypt is a reversible stand-in for the crypto package whose output
// does not contain its input.
func fakeEncrypt(plain string) (string, error) {
	b := []byte(plain)
	for i := range b {
		b[i] ^= 0x5a
	}
	return "enc:" + strings.ToUpper(hexString(b)), nil
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// harness runs a Reader over a test's lifetime.
type harness struct {
	r     *Reader
	store *memStore
	logs  *syncBuffer
	opens atomic.Int64
	stop  func() time.Duration // cancels and waits; returns how long Run took to return
}

func startReader(tb testing.TB, cfg config.Reader, opts Options) *harness {
	tb.Helper()
	return startReaderWith(tb, cfg, opts, nil)
}

// startReaderWith is startReader with a hook to adjust the Reader before Run.
func startReaderWith(tb testing.TB, cfg config.Reader, opts Options, adjust func(*Reader)) *harness {
	tb.Helper()
	h := &harness{store: &memStore{}, logs: &syncBuffer{}}
	opts.Logger = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if opts.Encrypt == nil {
		opts.Encrypt = fakeEncrypt
	}
	if opts.RetryInterval == 0 {
		opts.RetryInterval = 10 * time.Millisecond
	}
	open := opts.Open
	if open == nil {
		open = serial.Open
	}
	opts.Open = func(path string, mode *serial.Mode) (serial.Port, error) {
		h.opens.Add(1)
		return open(path, mode)
	}
	r, err := New(cfg, h.store, opts)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	if adjust != nil {
		adjust(r)
	}
	h.r = r
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	var took time.Duration
	h.stop = func() time.Duration {
		once.Do(func() {
			start := time.Now()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					tb.Errorf("Run returned %v, want nil", err)
				}
			case <-time.After(waitTimeout):
				tb.Fatalf("Run did not return after cancel")
			}
			took = time.Since(start)
			checkNoLeak(tb)
		})
		return took
	}
	tb.Cleanup(func() {
		h.stop()
		for _, id := range []string{plainID, plainID15, testID} {
			if strings.Contains(h.logs.String(), id) {
				tb.Errorf("a plaintext ID number appears in the log:\n%s", h.logs.String())
			}
		}
	})
	return h
}

func (h *harness) waitConnected(tb testing.TB) {
	tb.Helper()
	waitFor(tb, "reader connected", h.r.Connected)
}

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// checkNoLeak fails if a goroutine is still inside the package's Reader.
func checkNoLeak(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		if !bytes.Contains(buf, []byte("internal/reader.(*Reader)")) {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("goroutine left running:\n%s", buf)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
