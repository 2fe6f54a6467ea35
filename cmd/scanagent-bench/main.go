//go:build linux

// Command scanagent-bench measures scanagent against the limits of the machine
// it runs on and prints the product's performance figures, each beside its
// target: the disk's raw fsync latency, scan → durable latency over a
// pseudo-terminal, the burst store rate, the drain rate of a backlog to the
// platform emulator on loopback, idle RSS and CPU, RSS with a large backlog,
// and the size of the stripped linux/amd64 binary.
//
// It builds the agent itself (go build, so it needs the Go toolchain, as
// `go run` does) and runs it as a subprocess, `scanagent run` with a
// generated configuration, so that memory and CPU are the agent's own and
// not the benchmark's. It exits 1 when a target is missed. It is Linux only
// (/proc, pseudo-terminals). CI does not run it: timings on shared machines
// are noise. See BENCHMARKS.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options shape one run.
type options struct {
	dir      string // where the temporary data dirs go: the data dir's filesystem
	quick    bool
	bin      string // a prebuilt agent binary; "" = build one
	keep     bool
	only     map[string]bool // steps to run; nil = all but scale
	scale    int             // records in the scale step's queue
	backlogs string          // where backlog templates are kept between runs; "" = the temporary directory
	out      io.Writer
	log      io.Writer
}

// sizes are the counts and durations of one run; quick makes them small.
type sizes struct {
	fsyncs    int
	singles   int
	singleGap time.Duration
	burst     int
	backlog   int           // drained at 0 ms latency
	window    time.Duration // measuring window at 20 ms latency
	idle      time.Duration
	big       int // pending records for the memory figure
	bigSettle time.Duration
}

func sizesFor(quick bool) sizes {
	if quick {
		return sizes{fsyncs: 200, singles: 100, singleGap: 10 * time.Millisecond, burst: 10000, backlog: 10000,
			window: 2 * time.Second, idle: 5 * time.Second, big: 100000, bigSettle: 2 * time.Second}
	}
	return sizes{fsyncs: 1000, singles: 500, singleGap: 10 * time.Millisecond, burst: 10000, backlog: 100000,
		window: 10 * time.Second, idle: 20 * time.Second, big: 1000000, bigSettle: 5 * time.Second}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("scanagent-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := options{out: stdout, log: stderr}
	fs.StringVar(&o.dir, "dir", os.TempDir(), "directory on the data dir's filesystem; temporary data dirs are made in it")
	fs.BoolVar(&o.quick, "quick", false, "a fast smoke run (smaller counts, shorter windows; under a minute)")
	fs.StringVar(&o.bin, "bin", "", "use this scanagent binary instead of building one (the size figure is then skipped)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory")
	only := fs.String("only", "", "run only these steps, comma-separated: "+strings.Join(stepNames, ",")+
		" (scale runs only when named here)")
	fs.IntVar(&o.scale, "scale", 10_000_000, "records in the scale step's queue (about 320 bytes of disk each, twice)")
	fs.StringVar(&o.backlogs, "backlogs", "", "keep the backlog queues written for the runs in this directory and reuse them next time (default: written into the temporary directory, removed at the end)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: go run ./cmd/scanagent-bench [-quick] [-dir DIR] [-bin PATH]\n\n"+
			"Measures scanagent on this machine and prints each figure beside its target;\n"+
			"exits 1 when a target is missed.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *only != "" {
		o.only = map[string]bool{}
		for _, n := range strings.Split(*only, ",") {
			if !slices.Contains(stepNames, n) {
				fmt.Fprintf(stderr, "scanagent-bench: -only: unknown step %q (steps: %s)\n", n, strings.Join(stepNames, ","))
				return 2
			}
			o.only[n] = true
		}
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "scanagent-bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	b, err := newBench(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "scanagent-bench: %v\n", err)
		return 2
	}
	defer b.close()
	err = b.runAll(ctx)
	b.print()
	if err != nil {
		fmt.Fprintf(stderr, "scanagent-bench: %v\n", err)
		return 2
	}
	if b.missed() {
		return 1
	}
	return 0
}

// row is one line of the table. pass is nil for a figure without a target.
type row struct {
	figure, value, target string
	pass                  *bool
}

type bench struct {
	o        options
	s        sizes
	work     string // temporary directory in o.dir
	bin      string
	rows     []row
	busy0    [2]time.Duration // machine busy, and this process's and its children's CPU, at the start
	fsync    time.Duration    // raw fsync p50, spaced as single scans
	fsyncHot time.Duration    // raw fsync p50, back to back
	start    time.Time
}

func newBench(ctx context.Context, o options) (*bench, error) {
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(o.dir, "scanagent-bench-")
	if err != nil {
		return nil, err
	}
	return &bench{o: o, s: sizesFor(o.quick), work: work, start: time.Now(), busy0: busy()}, nil
}

func (b *bench) close() {
	if b.o.keep {
		fmt.Fprintf(b.o.log, "kept %s\n", b.work)
		return
	}
	os.RemoveAll(b.work)
}

func (b *bench) add(figure, value, target string, pass *bool) {
	b.rows = append(b.rows, row{figure, value, target, pass})
}

func (b *bench) info(figure, value string) { b.add(figure, value, "", nil) }

func (b *bench) check(figure, value, target string, ok bool) { b.add(figure, value, target, &ok) }

func (b *bench) progress(format string, a ...any) {
	fmt.Fprintf(b.o.log, "[%5.1fs] %s\n", time.Since(b.start).Seconds(), fmt.Sprintf(format, a...))
}

// stepNames are the steps of a run, in order; -only picks some.
var stepNames = []string{"binary", "fsync", "scans", "drain", "idle", "backlog", "startup", "drainmem", "scale"}

func (b *bench) runAll(ctx context.Context) error {
	steps := map[string]func(context.Context) error{
		"binary": b.binary, "fsync": b.rawFsync, "scans": b.scans, "drain": b.drain, "idle": b.idle,
		"backlog": b.bigBacklog, "startup": b.startup, "drainmem": b.drainMemory, "scale": b.scale,
	}
	for _, name := range stepNames {
		if err := ctx.Err(); err != nil {
			return err
		}
		// The binary is needed by every run, the fsync figure by scans.
		if b.o.only != nil && !b.o.only[name] && name != "binary" && !(name == "fsync" && b.o.only["scans"]) {
			continue
		}
		if name == "scale" && !b.o.only["scale"] {
			continue // minutes and gigabytes: only when asked for
		}
		if err := steps[name](ctx); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

func (b *bench) missed() bool {
	for _, r := range b.rows {
		if r.pass != nil && !*r.pass {
			return true
		}
	}
	return false
}

func (b *bench) print() {
	w := b.o.out
	mode := "full run"
	if b.o.quick {
		mode = "quick run (-quick: smaller counts, not the published figures)"
	}
	fmt.Fprintf(w, "\nscanagent-bench, %s, %s\n", mode, time.Now().Format("2006-01-02 15:04 MST"))
	for _, l := range machine(b.o.dir) {
		fmt.Fprintf(w, "  %s\n", l)
	}
	if b1 := busy(); b1[0] > 0 {
		others := (b1[0] - b.busy0[0]) - (b1[1] - b.busy0[1])
		share := float64(others) / float64(time.Since(b.start)) / float64(runtime.NumCPU())
		fmt.Fprintf(w, "  other processes used %.0f%% of the machine's CPU during the run (they skew every figure)\n", 100*max(share, 0))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tvalue\ttarget\tresult")
	fmt.Fprintln(tw, "------\t-----\t------\t------")
	for _, r := range b.rows {
		res := "info"
		if r.pass != nil {
			res = "PASS"
			if !*r.pass {
				res = "FAIL"
			}
		}
		target := r.target
		if target == "" {
			target = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.figure, r.value, target, res)
	}
	tw.Flush()
	if b.missed() {
		fmt.Fprintln(w, "\nresult: a target was missed")
	} else {
		fmt.Fprintln(w, "\nresult: every target met")
	}
}

// machine describes where the run happened.
func machine(dir string) []string {
	cpu := "unknown"
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(raw), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := "unknown"
	if raw, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(raw))
	}
	abs, _ := filepath.Abs(dir)
	return []string{
		fmt.Sprintf("machine: %d CPUs (%s), Linux %s, %s", runtime.NumCPU(), cpu, kernel, memTotal()),
		fmt.Sprintf("data dir: %s on %s", abs, fsName(dir)),
		fmt.Sprintf("Go: %s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH),
	}
}

// busy returns the CPU time the machine has spent busy (/proc/stat), and
// the CPU time of this process and its waited-for children.
func busy() [2]time.Duration {
	var out [2]time.Duration
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return out
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return out
	}
	var ticks int64
	for i, v := range f[1:8] { // user nice system idle iowait irq softirq
		n, _ := strconv.ParseInt(v, 10, 64)
		if i != 3 && i != 4 {
			ticks += n
		}
	}
	out[0] = time.Duration(ticks) * 10 * time.Millisecond // USER_HZ = 100
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) == nil {
			out[1] += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	return out
}

func memTotal() string {
	raw, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "memory unknown"
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "MemTotal:") {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "MemTotal:")), "%d", &kb)
			return fmt.Sprintf("%.1f GiB RAM", float64(kb)/(1<<20))
		}
	}
	return "memory unknown"
}

// fsName names the filesystem that holds dir, and its device from
// /proc/self/mounts when it can be found.
func fsName(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "unknown filesystem"
	}
	names := map[int64]string{0xEF53: "ext4", 0x58465342: "xfs", 0x9123683E: "btrfs", 0x01021994: "tmpfs",
		0x794c7630: "overlayfs", 0x2FC12FC1: "zfs", 0xF2F52010: "f2fs"}
	name, ok := names[int64(st.Type)]
	if !ok {
		name = fmt.Sprintf("filesystem type %#x", st.Type)
	}
	if name == "tmpfs" {
		name += " (memory: fsync costs nothing here; use -dir on a real disk)"
	}
	if dev := mountDevice(dir); dev != "" {
		name += " (" + dev + ")"
	}
	return name
}

// mountDevice is the device of the longest mount point containing dir.
func mountDevice(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return ""
	}
	raw, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return ""
	}
	best, dev := "", ""
	for _, l := range strings.Split(string(raw), "\n") {
		f := strings.Fields(l)
		if len(f) < 3 {
			continue
		}
		mp := f[1]
		if (abs == mp || strings.HasPrefix(abs, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > len(best) {
			best, dev = mp, f[0]+" "+f[2]
		}
	}
	return dev
}
