//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/creack/pty"

	"scanagent/internal/devserver"
)

// The platform emulator's credentials, shared with the agent's config.
const (
	benchClientID = "bench-client"
	benchSecret   = "bench-secret"
	benchAppID    = "01"
)

// binary builds the stripped linux/amd64 agent (as packaging/build.sh does)
// and reports its size; the runs use it when this machine is linux/amd64.
func (b *bench) binary(ctx context.Context) error {
	if b.o.bin != "" {
		b.bin = b.o.bin
		b.info("binary size", "skipped (-bin given)")
		return nil
	}
	b.progress("building the agent (stripped linux/amd64)")
	out := filepath.Join(b.work, "scanagent-linux-amd64")
	if err := goBuild(ctx, out, "linux", "amd64", "-s -w"); err != nil {
		return err
	}
	st, err := os.Stat(out)
	if err != nil {
		return err
	}
	b.info("binary size, stripped linux/amd64 (-trimpath -ldflags=\"-s -w\")", fmt.Sprintf("%.1f MiB", float64(st.Size())/(1<<20)))
	b.bin = out
	if runtime.GOARCH != "amd64" {
		b.bin = filepath.Join(b.work, "scanagent")
		return goBuild(ctx, b.bin, runtime.GOOS, runtime.GOARCH, "-s -w")
	}
	return nil
}

func goBuild(ctx context.Context, out, goos, goarch, ldflags string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", out, "scanagent/cmd/scanagent")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build (run the benchmark inside the scanagent module): %v\n%s", err, msg)
	}
	return nil
}

// platform is the devserver on a loopback port.
type platform struct {
	srv           *devserver.Server
	hs            *http.Server
	url           string
	served, calls atomic.Int64 // total time answering scan calls, and their number
}

func startPlatform(latency time.Duration) (*platform, error) {
	srv, err := devserver.New(devserver.Options{AppID: benchAppID, ClientID: benchClientID, ClientSecret: benchSecret,
		Latency: latency})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &platform{srv: srv, url: "http://" + ln.Addr().String()}
	h := srv.Handler()
	p.hs = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := time.Now()
		h.ServeHTTP(w, r)
		if r.URL.Path == scanPath {
			p.served.Add(int64(time.Since(t)))
			p.calls.Add(1)
		}
	})}
	go p.hs.Serve(ln)
	return p, nil
}

// scanPath is the platform's scan endpoint (the configuration's default).
const scanPath = "/api/scanrecord.jhtm"

// answerTime is the mean time the emulator took to answer a scan call, as
// its handler saw it: the configured latency plus the machine's timer
// overshoot and the handler's own work.
func (p *platform) answerTime() time.Duration {
	n := p.calls.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(p.served.Load() / n)
}

func (p *platform) accepted() int { return p.srv.Stats().Accepted }

func (p *platform) close() {
	p.srv.Close()
	p.hs.Close()
}

// unreachable is a platform address that refuses connections at once.
const unreachable = "http://127.0.0.1:1"

// agentConfig is what differs between the agent runs.
type agentConfig struct {
	dataDir     string
	baseURL     string
	concurrency int
	maxPending  int // 0: the default
}

// proc is a running agent subprocess with a virtual scanner on a
// pseudo-terminal.
type proc struct {
	cmd       *exec.Cmd
	master    *os.File // the scanner's side
	slave     *os.File // kept open so that the agent's reopen never sees a hangup
	started   time.Time
	connected chan struct{} // closed when the agent logs that the port is open
	exited    chan struct{}
	mu        sync.Mutex
	tail      []string // last log lines, for errors
	waitErr   error
	stopOnce  sync.Once
	stopErr   error
}

// startAgent writes a configuration and starts `scanagent run` with it; it
// returns once the agent has opened the pseudo-terminal.
func (b *bench) startAgent(ctx context.Context, c agentConfig) (*proc, error) {
	master, slave, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("pseudo-terminal: %w", err)
	}
	cfgPath := filepath.Join(filepath.Dir(c.dataDir), filepath.Base(c.dataDir)+".toml")
	if err := os.WriteFile(cfgPath, []byte(configText(c, slave.Name())), 0o600); err != nil {
		master.Close()
		slave.Close()
		return nil, err
	}
	p := &proc{master: master, slave: slave, connected: make(chan struct{}), exited: make(chan struct{})}
	p.cmd = exec.Command(b.bin, "--config", cfgPath, "run")
	p.cmd.Env = childEnv()
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		master.Close()
		slave.Close()
		return nil, err
	}
	go p.readLog(stderr)
	go func() {
		err := p.cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(p.exited)
	}()
	timer := time.NewTimer(2 * time.Minute)
	defer timer.Stop()
	select {
	case <-p.connected:
		return p, nil
	case <-p.exited:
		err = fmt.Errorf("the agent exited: %v\n%s", p.err(), p.log())
	case <-timer.C:
		err = fmt.Errorf("the agent did not open the port within 2 minutes\n%s", p.log())
	case <-ctx.Done():
		err = ctx.Err()
	}
	p.stop()
	return nil, err
}

func configText(c agentConfig, port string) string {
	queue := ""
	if c.maxPending > 0 {
		queue = fmt.Sprintf("\n[queue]\nmax_pending = %d\n", c.maxPending)
	}
	return fmt.Sprintf(`[agent]
data_dir = '%s'
log_level = "info"
admin_listen = ""

[platform]
base_url = "%s"
client_id = "%s"
client_secret = "%s"
app_id = "%s"
timeout = "10s"

[upload]
concurrency = %d
%s
[[reader]]
name = "bench"
port = '%s'
term_name = "bench till"
term_sn = "BENCH-0001"
ack_ok = "06"
ack_fail = "15"
`, c.dataDir, c.baseURL, benchClientID, benchSecret, benchAppID, c.concurrency, queue, port)
}

// childEnv is this process's environment without SCANAGENT_ variables,
// which would override the generated configuration.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SCANAGENT_") {
			env = append(env, kv)
		}
	}
	return env
}

func (p *proc) readLog(r interface{ Read([]byte) (int, error) }) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	once := sync.Once{}
	for sc.Scan() {
		line := sc.Text()
		p.mu.Lock()
		p.tail = append(p.tail, line)
		if len(p.tail) > 20 {
			p.tail = p.tail[1:]
		}
		p.mu.Unlock()
		if strings.Contains(line, "serial port connected") {
			once.Do(func() { close(p.connected) })
		}
	}
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

func (p *proc) err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM and waits (SIGKILL after 15 s); it can be called again.
func (p *proc) stop() error {
	p.stopOnce.Do(func() { p.stopErr = p.stop1() })
	return p.stopErr
}

func (p *proc) stop1() error {
	defer p.master.Close()
	defer p.slave.Close()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(15 * time.Second)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.exited
		return errors.New("the agent did not stop within 15 s of SIGTERM")
	}
	if err := p.err(); err != nil {
		return fmt.Errorf("the agent exited with %v\n%s", err, p.log())
	}
	return nil
}

// memory returns a process's VmRSS and VmHWM in bytes.
func memory(pid int) (rss, hwm int64, err error) {
	rss, hwm, _, _, err = memoryParts(pid)
	return rss, hwm, err
}

// memoryParts returns VmRSS and VmHWM, and VmRSS split into anonymous
// memory (the heap, stacks) and file pages (the binary's code, the map of
// queue.db), in bytes.
func memoryParts(pid int) (rss, hwm, anon, file int64, err error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, 0, 0, err
	}
	for _, l := range strings.Split(string(raw), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) < 1 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmRSS":
			rss = n << 10
		case "VmHWM":
			hwm = n << 10
		case "RssAnon":
			anon = n << 10
		case "RssFile", "RssShmem":
			file += n << 10
		}
	}
	return rss, hwm, anon, file, nil
}

// cpuTime is the CPU time a process has used, summed over its threads from
// /proc/PID/task/*/schedstat (nanoseconds, unlike the 10 ms ticks of
// /proc/PID/stat).
func cpuTime(pid int) (time.Duration, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("no /proc/%d/task/*/schedstat", pid)
	}
	var total int64
	for _, t := range tasks {
		raw, err := os.ReadFile(t)
		if err != nil {
			continue // a thread that just exited
		}
		f := strings.Fields(string(raw))
		if len(f) < 1 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		total += n
	}
	return time.Duration(total), nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
