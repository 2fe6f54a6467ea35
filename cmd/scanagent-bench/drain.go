//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"scanagent/internal/crypto"
	"scanagent/internal/queue"
)

// fillQueue writes n pending records into a fresh queue in dataDir, in large
// batches (EnqueueBatch): a backlog as a long outage leaves it.
func fillQueue(ctx context.Context, dataDir string, n int) error {
	q, err := queue.Open(filepath.Join(dataDir, "queue.db"), queue.Options{MaxPending: n})
	if err != nil {
		return err
	}
	ci, err := crypto.New(benchAppID, crypto.Options{})
	if err != nil {
		q.Close()
		return err
	}
	// A thousand people scanning over and over: encrypt each ID once.
	const people = 1000
	ids := make([]string, people)
	for i := range ids {
		if ids[i], err = ci.Encrypt(idNumber(i)); err != nil {
			q.Close()
			return err
		}
	}
	at := time.Now().Add(-time.Hour)
	const batch = 10000
	recs := make([]*queue.Record, 0, batch)
	for done := 0; done < n; {
		recs = recs[:0]
		for i := done; i < min(n, done+batch); i++ {
			recs = append(recs, &queue.Record{Reader: "bench", TermName: "bench till", TermSn: "BENCH-0001",
				Xgh: fmt.Sprintf("B%08d", i), Name: fmt.Sprintf("测试%d", i%100), IDCard: ids[i%people], UserType: "学生",
				ScanTime: at.Add(time.Duration(i) * time.Millisecond)})
		}
		k, err := q.EnqueueBatch(ctx, recs)
		if err != nil {
			q.Close()
			return err
		}
		done += k
	}
	return q.Close()
}

// backlogIn puts a queue file with n pending records in dataDir: written
// once, copied for the next runs.
func (b *bench) backlogIn(ctx context.Context, dataDir string, n int) error {
	keep := b.work
	if b.o.backlogs != "" {
		keep = b.o.backlogs
	}
	tmpl := filepath.Join(keep, fmt.Sprintf("backlog-%d", n))
	if _, err := os.Stat(filepath.Join(tmpl, "queue.db")); err != nil {
		os.RemoveAll(tmpl) // a template left half written
		t := time.Now()
		if err := fillQueue(ctx, tmpl, n); err != nil {
			return err
		}
		b.progress("  backlog of %d written in %s", n, time.Since(t).Round(time.Millisecond))
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	src, err := os.Open(filepath.Join(tmpl, "queue.db"))
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(filepath.Join(dataDir, "queue.db"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// drain measures how fast a backlog reaches the platform emulator on
// loopback, at concurrency 1 and 8, with no latency and with 20 ms.
func (b *bench) drain(ctx context.Context) error {
	for _, c := range []struct {
		workers int
		latency time.Duration
	}{{1, 0}, {8, 0}, {1, 20 * time.Millisecond}, {8, 20 * time.Millisecond}} {
		if err := b.drainOne(ctx, c.workers, c.latency); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) drainOne(ctx context.Context, workers int, latency time.Duration) error {
	n := b.s.backlog
	dir := filepath.Join(b.work, fmt.Sprintf("drain-c%d-%s", workers, latency))
	b.progress("drain: backlog of %d, concurrency %d, platform latency %s", n, workers, latency)
	if err := b.backlogIn(ctx, dir, n); err != nil {
		return err
	}
	plat, err := startPlatform(latency)
	if err != nil {
		return err
	}
	defer plat.close()
	p, err := b.startAgent(ctx, agentConfig{dataDir: dir, baseURL: plat.url, concurrency: workers})
	if err != nil {
		return err
	}
	defer p.stop()

	// The rate is counted from the first records accepted (the agent has
	// started and fetched its token) to the last of the backlog, or to the
	// end of the window.
	warm := max(workers*4, n/100)
	var from, to time.Time
	var fromN, toN int
	deadline := time.Now().Add(10 * time.Minute)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.exited:
			return fmt.Errorf("the agent exited\n%s", p.log())
		case now := <-tick.C:
			got := plat.accepted()
			if from.IsZero() {
				if got >= warm {
					from, fromN = now, got
				}
				break
			}
			if got >= n || (latency > 0 && now.Sub(from) >= b.s.window) {
				to, toN = now, got
			}
			if now.After(deadline) {
				return fmt.Errorf("the backlog did not drain within 10 minutes: %d of %d accepted", got, n)
			}
		}
		if !to.IsZero() {
			break
		}
	}
	rate := float64(toN-fromN) / to.Sub(from).Seconds()
	name := fmt.Sprintf("drain %d-record backlog, concurrency %d, latency %s", n, workers, latency)
	switch {
	case latency > 0:
		bound := float64(workers) / latency.Seconds()
		served := plat.answerTime()
		b.check(name, fmt.Sprintf("%.0f records/s = %.1f%% of %d/%s = %.0f/s", rate, 100*rate/bound, workers, latency, bound),
			"≥ 90% of the bound", rate >= 0.9*bound)
		b.info("  the emulator's mean answer time (its own timer overshoot included)", fmt.Sprintf("%s: bound %.0f/s, %.1f%% of it",
			ms(served), float64(workers)/served.Seconds(), 100*rate*served.Seconds()/float64(workers)))
	case workers == 8:
		b.check(name, fmt.Sprintf("%.0f records/s", rate), "≥ 3,000/s (at the stated concurrency 8)", rate >= 3000)
	default:
		b.info(name, fmt.Sprintf("%.0f records/s", rate))
	}
	return p.stop()
}
