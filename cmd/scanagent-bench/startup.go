//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"scanagent/internal/queue"
)

// acksOf forwards the bytes the agent writes to the scanner.
func acksOf(p *proc) <-chan byte {
	acks := make(chan byte, 1<<16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := p.master.Read(buf)
			for _, c := range buf[:n] {
				acks <- c
			}
			if err != nil {
				close(acks)
				return
			}
		}
	}()
	return acks
}

// started is what a start of the agent on a large backlog measured.
type started struct {
	open     time.Duration // process start → serial port open
	firstAck time.Duration // process start → the first scan's ack
	peak     int64         // VmHWM after the first ack
}

// startOn starts the agent on dataDir, scans once as soon as the port is
// open, and measures the start. The agent is left running.
func (b *bench) startOn(ctx context.Context, c agentConfig) (*proc, started, error) {
	var s started
	p, err := b.startAgent(ctx, c)
	if err != nil {
		return nil, s, err
	}
	s.open = time.Since(p.started)
	acks := acksOf(p)
	if _, err := p.master.Write([]byte(frameFor(7))); err != nil {
		p.stop()
		return nil, s, err
	}
	a, err := waitAck(ctx, acks, time.Minute)
	if err != nil || a != ackOK {
		p.stop()
		return nil, s, fmt.Errorf("first scan: ack %#x, %v\n%s", a, err, p.log())
	}
	s.firstAck = time.Since(p.started)
	if _, s.peak, err = memory(p.pid()); err != nil {
		p.stop()
		return nil, s, err
	}
	return p, s, nil
}

// evict drops a file's pages from the page cache (they are clean), as after
// a reboot: the next read comes from the disk.
func evict(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}

// startup measures starting the agent on a large backlog (b.s.big pending):
// after a clean stop, after a kill -9,
// and after a clean stop with queue.db out of the page cache.
func (b *bench) startup(ctx context.Context) error {
	n := b.s.big
	dir := filepath.Join(b.work, "startup")
	b.progress("start-up: %d pending records", n)
	if err := b.backlogIn(ctx, dir, n); err != nil {
		return err
	}
	db := filepath.Join(dir, "queue.db")
	st, err := os.Stat(db)
	if err != nil {
		return err
	}
	// Room for the scan: the backlog fills the default max_pending.
	c := agentConfig{dataDir: dir, baseURL: unreachable, concurrency: 2, maxPending: 2 * n}
	report := func(when string, s started, checked bool) {
		name := fmt.Sprintf("start-up with %d pending, %s", n, when)
		if checked {
			b.check(name+": peak RSS (VmHWM)", mib(s.peak), "≤ 40 MB", s.peak <= 40e6)
			b.check(name+": first scan acked after", s.firstAck.Round(time.Millisecond).String(), "≤ 1s", s.firstAck <= time.Second)
		} else {
			b.info(name+": peak RSS (VmHWM)", mib(s.peak))
			b.info(name+": first scan acked after", s.firstAck.Round(time.Millisecond).String())
		}
		b.info("  of which until the port was open", s.open.Round(time.Millisecond).String())
	}

	// A clean stop (the backlog's writer closed the file).
	b.progress("  after a clean stop (queue.db %s)", mib(st.Size()))
	p, s, err := b.startOn(ctx, c)
	if err != nil {
		return err
	}
	// kill -9: the file is left as a crash leaves it.
	_ = p.cmd.Process.Kill()
	<-p.exited
	p.master.Close()
	p.slave.Close()
	report("after a clean stop", s, true)

	b.progress("  after kill -9")
	if p, s, err = b.startOn(ctx, c); err != nil {
		return err
	}
	if err := p.stop(); err != nil {
		return err
	}
	report("after kill -9", s, true)

	b.progress("  after a clean stop, queue.db evicted from the page cache")
	if err := evict(db); err != nil {
		return err
	}
	if p, s, err = b.startOn(ctx, c); err != nil {
		return err
	}
	if err := p.stop(); err != nil {
		return err
	}
	report("after a clean stop, file not cached (as after a reboot)", s, false)
	return nil
}

// rssWatch samples a process's VmRSS every 50 ms until stopped, keeping
// the largest.
type rssWatch struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	max  int64
	last int64
}

func watchRSS(pid int) *rssWatch {
	w := &rssWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if rss, _, err := memory(pid); err == nil {
				w.mu.Lock()
				w.max, w.last = max(w.max, rss), rss
				w.mu.Unlock()
			}
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// end stops the sampling and returns the largest sample and the last.
func (w *rssWatch) end() (largest, last int64) {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.max, w.last
}

// drained is what drainRate measured: the rate, the largest and the last
// RSS sample, and the start.
type drained struct {
	rate            float64
	maxRSS, lastRSS int64
	started
}

// drainRate starts the agent on dir against a loopback platform with no
// latency at concurrency 8, and measures the rate over count records
// accepted after the first 1,000, sampling RSS all along. The agent is
// stopped at the end.
func (b *bench) drainRate(ctx context.Context, dir string, count int) (d drained, err error) {
	plat, err := startPlatform(0)
	if err != nil {
		return d, err
	}
	defer plat.close()
	p, s, err := b.startOn(ctx, agentConfig{dataDir: dir, baseURL: plat.url, concurrency: 8, maxPending: 2 * max(count, 1_000_000, b.o.scale)})
	d.started = s
	if err != nil {
		return d, err
	}
	defer p.stop()
	w := watchRSS(p.pid())
	const warm = 1000
	var from time.Time
	fromN := 0
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(10 * time.Minute)
	for {
		select {
		case <-ctx.Done():
			w.end()
			return d, ctx.Err()
		case <-p.exited:
			w.end()
			return d, fmt.Errorf("the agent exited\n%s", p.log())
		case now := <-tick.C:
			got := plat.accepted()
			if from.IsZero() {
				if got >= warm {
					from, fromN = now, got
				}
				continue
			}
			if got-fromN >= count {
				d.maxRSS, d.lastRSS = w.end()
				d.rate = float64(got-fromN) / now.Sub(from).Seconds()
				return d, p.stop()
			}
			if now.After(deadline) {
				w.end()
				return d, fmt.Errorf("%d of %d records accepted in 10 minutes", got-fromN, count)
			}
		}
	}
}

// drainMemory measures RSS while the agent drains a large backlog (b.s.big
// pending): the uploader's cursor walks through the file, and the pages it
// passes must not stay resident.
func (b *bench) drainMemory(ctx context.Context) error {
	n := b.s.big
	dir := filepath.Join(b.work, "drainmem")
	count := min(n-2000, 200000)
	if b.o.quick {
		count = min(n-2000, 50000)
	}
	b.progress("memory while draining: %d of %d pending records", count, n)
	if err := b.backlogIn(ctx, dir, n); err != nil {
		return err
	}
	d, err := b.drainRate(ctx, dir, count)
	if err != nil {
		return err
	}
	b.check(fmt.Sprintf("RSS while draining %d of %d pending (max of VmRSS every 50 ms)", count, n), mib(d.maxRSS), "≤ 40 MB", d.maxRSS <= 40e6)
	b.info("  drain rate meanwhile, concurrency 8, latency 0s", fmt.Sprintf("%.0f records/s", d.rate))
	return nil
}

// scale builds a queue of b.o.scale records (-scale) and measures the start,
// `queue stats`, and the drain rate at the start of the backlog and at its
// end (after all but the last 100,000 are delivered): a per-record cost
// that grew with the backlog would show as a lower rate at the end.
func (b *bench) scale(ctx context.Context) error {
	n := b.o.scale
	const window = 100000
	if n < 3*window {
		return fmt.Errorf("-scale %d: at least %d", n, 3*window)
	}
	b.progress("scale: %d pending records (-scale)", n)
	dir := filepath.Join(b.work, "scale")
	t := time.Now()
	if err := b.backlogIn(ctx, dir, n); err != nil {
		return err
	}
	db := filepath.Join(dir, "queue.db")
	st, err := os.Stat(db)
	if err != nil {
		return err
	}
	b.progress("  queue.db %s ready in %s", mib(st.Size()), time.Since(t).Round(time.Second))
	b.info(fmt.Sprintf("scale: queue.db with %d pending", n), mib(st.Size()))

	stats := func(when string) error {
		cfg := filepath.Join(b.work, "scale.toml")
		t := time.Now()
		out, err := exec.CommandContext(ctx, b.bin, "--config", cfg, "queue", "stats").CombinedOutput()
		if err != nil {
			return fmt.Errorf("queue stats: %v\n%s", err, out)
		}
		b.info(fmt.Sprintf("  `queue stats` (agent stopped), %s", when), time.Since(t).Round(time.Millisecond).String())
		return nil
	}

	d0, err := b.drainRate(ctx, dir, window)
	if err != nil {
		return err
	}
	b.info("  start (clean stop before): port open / first scan acked", fmt.Sprintf("%s / %s",
		d0.open.Round(time.Millisecond), d0.firstAck.Round(time.Millisecond)))
	b.check("  start: peak RSS (VmHWM) at the first ack", mib(d0.peak), "≤ 40 MB", d0.peak <= 40e6)
	b.info(fmt.Sprintf("  drain rate over the first %d, concurrency 8, latency 0s", window), fmt.Sprintf("%.0f records/s", d0.rate))
	b.check("  RSS while draining them (max of VmRSS every 50 ms)", mib(d0.maxRSS), "≤ 40 MB", d0.maxRSS <= 40e6)
	if err := stats("at the start"); err != nil {
		return err
	}

	b.progress("  delivering all but the last %d (as a long drain would)", window)
	t = time.Now()
	if err := deliverAllBut(ctx, db, window); err != nil {
		return err
	}
	b.progress("  done in %s", time.Since(t).Round(time.Second))
	if err := stats("at the end"); err != nil {
		return err
	}
	d1, err := b.drainRate(ctx, dir, window-2000)
	if err != nil {
		return err
	}
	b.info("  start at the end of the backlog: port open / first scan acked", fmt.Sprintf("%s / %s",
		d1.open.Round(time.Millisecond), d1.firstAck.Round(time.Millisecond)))
	b.info(fmt.Sprintf("  drain rate over the last %d", window), fmt.Sprintf("%.0f records/s", d1.rate))
	b.info("  RSS while draining them (max of VmRSS every 50 ms)", mib(d1.maxRSS))
	b.check("  drain rate at the end ÷ at the start", fmt.Sprintf("%.2f", d1.rate/d0.rate), "≥ 0.8 (no per-record cost growing with the backlog)",
		d1.rate >= 0.8*d0.rate)
	b.check("  RSS when that drain ended (the agent rewrote queue.db once drained)", mib(d1.lastRSS), "≤ 40 MB", d1.lastRSS <= 40e6)
	if st, err := os.Stat(db); err == nil {
		b.info("  queue.db when that drain ended (about 1,000 pending)", mib(st.Size()))
	}
	return nil
}

// deliverAllBut delivers every pending record of the queue at path except
// the last keep, oldest first, in large groups.
func deliverAllBut(ctx context.Context, path string, keep int) error {
	q, err := queue.Open(path, queue.Options{})
	if err != nil {
		return err
	}
	s, err := q.Stats()
	if err != nil {
		q.Close()
		return err
	}
	left := int(s.Pending) - keep
	var after uint64
	for left > 0 {
		recs, err := q.Pending(after, min(left, 20000))
		if err != nil {
			q.Close()
			return err
		}
		if len(recs) == 0 {
			break
		}
		ids := make([]uint64, len(recs))
		for i, r := range recs {
			ids[i] = r.ID
		}
		if err := q.Deliver(ctx, ids...); err != nil {
			q.Close()
			return err
		}
		after = ids[len(ids)-1]
		left -= len(ids)
	}
	if left > 0 {
		q.Close()
		return errors.New("fewer records pending than counted")
	}
	return q.Close()
}
