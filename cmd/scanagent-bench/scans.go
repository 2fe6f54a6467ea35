//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

const (
	ackOK   = 0x06
	ackFail = 0x15
)

// rawFsync measures the disk's own limit: a 4 KiB write and fsync in a loop
// on the data dir's filesystem, back to back and spaced as the single scans
// are (an isolated fsync on an idle machine is slower: the device and the
// CPUs have gone idle). fdatasync, which the queue's journal uses (once per
// group of scans; a bbolt commit uses it twice), is shown too.
func (b *bench) rawFsync(ctx context.Context) error {
	b.progress("raw fsync: %d × (4 KiB write + fsync), back to back and %s apart", b.s.fsyncs, b.s.singleGap)
	f, err := os.CreateTemp(b.work, "fsync-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	loop := func(n int, gap time.Duration, sync func() error) (p50, p99 time.Duration, err error) {
		// The first write allocates the block; the loop overwrites it, as
		// bbolt overwrites its pages and meta page.
		if _, err := f.WriteAt(buf, 0); err != nil {
			return 0, 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, 0, err
		}
		ds := make([]time.Duration, 0, n)
		for i := range n {
			if gap > 0 && !sleepCtx(ctx, gap) {
				return 0, 0, ctx.Err()
			}
			buf[0] = byte(i)
			t := time.Now()
			if _, err := f.WriteAt(buf, 0); err != nil {
				return 0, 0, err
			}
			if err := sync(); err != nil {
				return 0, 0, err
			}
			ds = append(ds, time.Since(t))
		}
		return percentile(ds, 50), percentile(ds, 99), nil
	}
	fdatasync := func() error { return syscall.Fdatasync(int(f.Fd())) }
	p50, p99, err := loop(b.s.fsyncs, 0, f.Sync)
	if err != nil {
		return err
	}
	b.fsyncHot = p50
	b.info("raw fsync, 4 KiB write + fsync, back to back: p50 / p99", fmt.Sprintf("%s / %s", ms(p50), ms(p99)))
	if p50, p99, err = loop(b.s.fsyncs, 0, fdatasync); err != nil {
		return err
	}
	b.info("raw fdatasync, back to back (the journal syncs once): p50 / p99", fmt.Sprintf("%s / %s", ms(p50), ms(p99)))
	if p50, p99, err = loop(b.s.singles, b.s.singleGap, f.Sync); err != nil {
		return err
	}
	b.fsync = p50
	b.info(fmt.Sprintf("raw fsync, isolated (%s apart, as the single scans): p50 / p99", b.s.singleGap), fmt.Sprintf("%s / %s", ms(p50), ms(p99)))
	return nil
}

// scans measures single scans (frame complete on the pty → ack byte back)
// and a pipelined burst, through the real agent with a reachable platform.
func (b *bench) scans(ctx context.Context) error {
	plat, err := startPlatform(0)
	if err != nil {
		return err
	}
	defer plat.close()
	p, err := b.startAgent(ctx, agentConfig{dataDir: filepath.Join(b.work, "scans"), baseURL: plat.url, concurrency: 2})
	if err != nil {
		return err
	}
	defer p.stop()
	acks := acksOf(p)

	// Single scans, one at a time, as people at a till present cards.
	b.progress("scan → durable: %d single scans, %s apart", b.s.singles, b.s.singleGap)
	const warm = 20
	var ds []time.Duration
	for i := range b.s.singles + warm {
		frame := []byte(frameFor(i))
		t := time.Now()
		if _, err := p.master.Write(frame); err != nil {
			return err
		}
		c, err := waitAck(ctx, acks, 5*time.Second)
		if err != nil {
			return fmt.Errorf("scan %d: %w\n%s", i, err, p.log())
		}
		d := time.Since(t)
		if c != ackOK {
			return fmt.Errorf("scan %d: ack %#x, want %#x\n%s", i, c, ackOK, p.log())
		}
		if i >= warm {
			ds = append(ds, d)
		}
		if !sleepCtx(ctx, b.s.singleGap) {
			return ctx.Err()
		}
	}
	p50, p99 := percentile(ds, 50), percentile(ds, 99)
	ratio := float64(p50) / float64(b.fsync)
	b.info("scan → durable (pty frame → ack byte): p50 / p99", fmt.Sprintf("%s / %s", ms(p50), ms(p99)))
	b.check("scan → durable p50 ÷ isolated raw fsync p50", fmt.Sprintf("%.2f×", ratio), "≤ 2×", ratio <= 2)
	b.info("scan → durable p50 ÷ back-to-back raw fsync p50", fmt.Sprintf("%.2f×", float64(p50)/float64(b.fsyncHot)))

	// The burst: every frame written down the pty as fast as it takes them.
	n := b.s.burst
	b.progress("burst: %d frames pipelined down one pty", n)
	var all []byte
	for i := range n {
		all = append(all, frameFor(1_000_000+i)...)
	}
	t := time.Now()
	werr := make(chan error, 1)
	go func() {
		_, err := p.master.Write(all)
		werr <- err
	}()
	got, failed := 0, 0
	for got+failed < n {
		c, err := waitAck(ctx, acks, 30*time.Second)
		if err != nil {
			return fmt.Errorf("burst: %d of %d acks: %w\n%s", got, n, err, p.log())
		}
		if c == ackOK {
			got++
		} else {
			failed++
		}
	}
	elapsed := time.Since(t)
	if err := <-werr; err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("burst: %d scans answered ack_fail\n%s", failed, p.log())
	}
	rate := float64(n) / elapsed.Seconds()
	single := 1 / b.fsyncHot.Seconds()
	target := min(5000, 5*single)
	b.check(fmt.Sprintf("burst store rate, %d frames down one pty", n), fmt.Sprintf("%.0f scans/s", rate),
		fmt.Sprintf("≥ %.0f/s (min of 5,000 and 5 × %.0f single fsyncs/s)", target, single), rate >= target)
	return p.stop()
}

func waitAck(ctx context.Context, acks <-chan byte, d time.Duration) (byte, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case c, ok := <-acks:
		if !ok {
			return 0, errors.New("the pseudo-terminal closed")
		}
		return c, nil
	case <-t.C:
		return 0, fmt.Errorf("no ack within %s", d)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// frameFor is scan i as a delimited line: xgh,name,idCard,userType.
func frameFor(i int) string {
	return fmt.Sprintf("B%08d,测试%d,%s,学生\r\n", i, i%100, idNumber(i))
}

// idNumber is a plausible GB 11643 ID number for person i.
func idNumber(i int) string {
	d17 := fmt.Sprintf("330102%04d%02d%02d%03d", 1970+i%40, 1+i%12, 1+i%28, i%1000)
	weights := []int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for k, w := range weights {
		sum += int(d17[k]-'0') * w
	}
	return d17 + string("10X98765432"[sum%11])
}

func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)) }

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
