//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// fileRSS sums the resident pages of a process's mappings of its own
// executable and of queue.db, from /proc/PID/smaps.
func fileRSS(pid int) (exe, db int64, err error) {
	self, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return 0, 0, err
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	var into *int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) >= 5 && strings.Contains(fields[0], "-"):
			// A mapping's header: address perms offset dev inode [path].
			into = nil
			if len(fields) >= 6 {
				switch path := fields[5]; {
				case path == self:
					into = &exe
				case strings.HasSuffix(path, "/queue.db"):
					into = &db
				}
			}
		case len(fields) >= 2 && fields[0] == "Rss:" && into != nil:
			var kb int64
			fmt.Sscan(fields[1], &kb)
			*into += kb << 10
		}
	}
	return exe, db, sc.Err()
}

// idle measures the agent doing nothing: one reader open, the platform
// reachable, the queue empty. CPU is taken over the window and scaled to a
// minute; RSS at the end of it.
func (b *bench) idle(ctx context.Context) error {
	plat, err := startPlatform(0)
	if err != nil {
		return err
	}
	defer plat.close()
	p, err := b.startAgent(ctx, agentConfig{dataDir: filepath.Join(b.work, "idle"), baseURL: plat.url, concurrency: 2})
	if err != nil {
		return err
	}
	defer p.stop()
	// One scan, so that the token is fetched and every path has run once,
	// then let start-up settle.
	if _, err := p.master.Write([]byte(frameFor(0))); err != nil {
		return err
	}
	if !sleepCtx(ctx, 2*time.Second) {
		return ctx.Err()
	}
	b.progress("idle: measuring the agent for %s", b.s.idle)
	c0, err := cpuTime(p.pid())
	if err != nil {
		return err
	}
	t0 := time.Now()
	if !sleepCtx(ctx, b.s.idle) {
		return ctx.Err()
	}
	c1, err := cpuTime(p.pid())
	if err != nil {
		return err
	}
	perMin := time.Duration(float64(c1-c0) * float64(time.Minute) / float64(time.Since(t0)))
	rss, _, anon, file, err := memoryParts(p.pid())
	if err != nil {
		return err
	}
	b.check("idle RSS, one reader open", mib(rss), "≤ 15 MB", rss <= 15e6)
	b.info("  of which anonymous (heap, stacks) / file pages", mib(anon)+" / "+mib(file))
	if exe, db, err := fileRSS(p.pid()); err == nil {
		b.info("  file pages of the executable / of queue.db", mib(exe)+" / "+mib(db))
	}
	b.check(fmt.Sprintf("idle CPU, one reader open (over %s)", b.s.idle), fmt.Sprintf("%.2f ms/min", float64(perMin)/1e6),
		"≤ 60 ms/min", perMin <= 60*time.Millisecond)
	return p.stop()
}

// bigBacklog measures the agent with a large backlog and an unreachable
// platform: memory must not grow with the backlog.
func (b *bench) bigBacklog(ctx context.Context) error {
	n := b.s.big
	dir := filepath.Join(b.work, "big")
	b.progress("backlog memory: writing %d pending records", n)
	t := time.Now()
	if err := fillQueue(ctx, dir, n); err != nil {
		return err
	}
	st, err := os.Stat(filepath.Join(dir, "queue.db"))
	if err != nil {
		return err
	}
	b.progress("  written in %s, queue.db %s", time.Since(t).Round(time.Millisecond), mib(st.Size()))
	p, err := b.startAgent(ctx, agentConfig{dataDir: dir, baseURL: unreachable, concurrency: 2})
	if err != nil {
		return err
	}
	defer p.stop()
	startup := time.Since(p.started)
	if !sleepCtx(ctx, b.s.bigSettle) {
		return ctx.Err()
	}
	rss, hwm, err := memory(p.pid())
	if err != nil {
		return err
	}
	b.check(fmt.Sprintf("RSS with %d pending, platform unreachable", n), mib(rss), "≤ 40 MB", rss <= 40e6)
	b.info(fmt.Sprintf("  peak RSS (VmHWM) of that agent; queue.db is %s", mib(st.Size())), mib(hwm))
	b.info(fmt.Sprintf("  start-up with %d pending (open, check, port open)", n), startup.Round(time.Millisecond).String())
	return p.stop()
}
