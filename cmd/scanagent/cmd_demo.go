package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/creack/pty"

	"scanagent/internal/clock"
	"scanagent/internal/config"
	"scanagent/internal/devserver"
	"scanagent/internal/termtext"
)

// demoCmd runs the whole system on one machine with no hardware: the
// devserver, a virtual scanner on a pseudo-terminal and the agent, with a
// platform outage in the middle.
type demoCmd struct{}

func (c *demoCmd) Run(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("demo")
	o := defaultDemo()
	fs.IntVar(&o.Scans, "scans", o.Scans, "how many scans the virtual scanner makes")
	fs.DurationVar(&o.Interval, "interval", o.Interval, "time between scans")
	fs.DurationVar(&o.Outage, "outage", o.Outage, "how long the platform is down (0 = no outage)")
	fs.BoolVar(&o.Verbose, "v", false, "show the agent's debug log")
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	if o.Scans < 1 {
		return usagef("demo: --scans must be at least 1")
	}
	o.OutageAt = o.Scans * 2 / 5
	o.Out = e.stdout
	o.Live = isTerminal(e.stdout)
	t, err := runDemo(ctx, o)
	if err != nil {
		return err
	}
	if !t.ok(o.Scans) {
		return exitError{1}
	}
	return nil
}

// demoOptions shape a demo run; tests make it short.
type demoOptions struct {
	Scans    int
	Interval time.Duration
	OutageAt int              // scan number at which the platform goes down
	Outage   time.Duration    // how long it stays down
	Faults   []devserver.Mode // what the platform does during the outage, in equal turns; nil = down
	RetryMax time.Duration    // the agent's retry_max; 0 = 2s
	Clock    clock.Clock      // the agent's clock; nil = the system clock
	Out      io.Writer
	Live     bool // redraw one progress line (a terminal) instead of printing lines
	Verbose  bool
}

func defaultDemo() demoOptions {
	return demoOptions{Scans: 100, Interval: 250 * time.Millisecond, Outage: 10 * time.Second}
}

// tally is the demo's verdict.
type tally struct {
	Scanned, Stored, Delivered, Duplicates, Dead, Wrong int
	TokenFetches                                        int
	Alerts                                              int // messages the platform's msgsend took
}

// demoOperator is the xgh the demo's alerts go to.
const demoOperator = "20260000"

func (t tally) ok(scans int) bool {
	return t.Scanned == scans && t.Stored == scans && t.Delivered == scans && t.Duplicates == 0 && t.Dead == 0 && t.Wrong == 0
}

// person is one virtual card holder.
type person struct{ xgh, name, id, userType string }

func demoPerson(i int) person {
	names := []string{"张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊", "赵敏", "黄涛"}
	types := []string{"学生", "教师", "职工"}
	return person{
		xgh:      fmt.Sprintf("2026%05d", i+1),
		name:     names[i%len(names)],
		id:       chineseID(fmt.Sprintf("33010219%02d0%d%02d%03d", 90+i%10, 1+i%9, 1+i%28, i%1000)),
		userType: types[i%len(types)],
	}
}

// chineseID appends the GB 11643 check character to 17 digits.
func chineseID(d17 string) string {
	weights := []int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for i, w := range weights {
		sum += int(d17[i]-'0') * w
	}
	return d17 + string("10X98765432"[sum%11])
}

func runDemo(ctx context.Context, o demoOptions) (tally, error) {
	var t tally
	out := &demoOut{w: o.Out, live: o.Live}
	dir, err := os.MkdirTemp("", "scanagent-demo-")
	if err != nil {
		return t, err
	}
	defer os.RemoveAll(dir)

	// The platform.
	srv, err := devserver.New(devserver.Options{AppID: "01", ClientID: "demo-client", ClientSecret: "demo-secret"})
	if err != nil {
		return t, err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return t, err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln)
	defer hs.Close()

	// The scanner: the agent opens the pseudo-terminal's device like a
	// serial port; the demo writes frames to the other side.
	master, slave, err := pty.Open()
	if err != nil {
		return t, fmt.Errorf("demo needs a pseudo-terminal (Linux or macOS): %w", err)
	}
	defer master.Close()
	defer slave.Close()

	cfg := config.Default()
	cfg.Path = filepath.Join(dir, "config.toml")
	cfg.Agent.DataDir = filepath.Join(dir, "data")
	cfg.Agent.AdminListen = ""
	cfg.Platform.BaseURL = "http://" + ln.Addr().String()
	cfg.Platform.ClientID, cfg.Platform.ClientSecret, cfg.Platform.AppID = "demo-client", "demo-secret", "01"
	cfg.Platform.Timeout = config.Duration{Duration: 2 * time.Second}
	cfg.Upload.RetryInitial = config.Duration{Duration: 200 * time.Millisecond}
	cfg.Upload.RetryMax = config.Duration{Duration: 2 * time.Second}
	if o.RetryMax > 0 {
		cfg.Upload.RetryInitial.Duration = min(cfg.Upload.RetryInitial.Duration, o.RetryMax)
		cfg.Upload.RetryMax.Duration = o.RetryMax
	}
	rc := config.DefaultReader()
	rc.Name, rc.Port, rc.TermName, rc.TermSn = "demo-gate", slave.Name(), "演示食堂 1 号机", "DEMO-0001"
	rc.AckOK, rc.AckFail = "06", "15"
	cfg.Readers = []config.Reader{rc}
	if o.Outage > 0 {
		// One operator alert: the backlog grows old during the outage; its
		// start and its clearing are sent once the platform is back.
		cfg.Alerts.To = []string{demoOperator}
		cfg.Alerts.BacklogAge = config.Duration{Duration: max(o.Outage/2, 100*time.Millisecond)}
	}
	if probs := cfg.Validate(); len(probs) > 0 {
		return t, probs
	}

	level := "info"
	if o.Verbose {
		level = "debug"
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: levelOf(level),
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // the demo's lines are read live
			}
			return a
		}}))
	a, err := newAgent(&cfg, log, o.Clock)
	if err != nil {
		return t, err
	}
	actx, stopAgent := context.WithCancel(ctx)
	agentDone := make(chan error, 1)
	go func() { agentDone <- a.run(actx) }()
	defer func() {
		stopAgent()
		<-agentDone
	}()

	out.printf("demo: platform emulator on %s, virtual scanner on %s, %d scans, outage of %s at scan %d\n",
		cfg.Platform.BaseURL, slave.Name(), o.Scans, o.Outage, o.OutageAt)
	if err := waitUntil(ctx, 10*time.Second, func() bool { return a.readers[0].Connected() }); err != nil {
		return t, errors.New("demo: the agent did not open the virtual scanner's port")
	}

	acks := make(chan byte, 16)
	go func() {
		buf := make([]byte, 64)
		for {
			n, err := master.Read(buf)
			for _, b := range buf[:n] {
				acks <- b
			}
			if err != nil {
				close(acks)
				return
			}
		}
	}()

	var scanned, stored atomic.Int64
	var outage atomic.Bool
	progress := func() {
		s := srv.Stats()
		qs, _ := a.q.Stats()
		state := "up"
		if outage.Load() {
			state = "DOWN"
		}
		out.progress(fmt.Sprintf("scanned %d/%d  stored %d  delivered %d  pending %d  platform %s",
			scanned.Load(), o.Scans, stored.Load(), s.Accepted, qs.Pending, state))
	}
	stopProgress := every(200*time.Millisecond, progress)
	defer stopProgress()

	for i := range o.Scans {
		if i == o.OutageAt && o.Outage > 0 {
			outage.Store(true)
			faults := o.Faults
			if len(faults) == 0 {
				faults = []devserver.Mode{devserver.ModeDown}
			}
			go func() {
				step := o.Outage / time.Duration(len(faults))
				for _, m := range faults {
					srv.SetMode(m)
					out.printf("demo: platform %s for %s (scans are kept in the queue)\n", strings.ToUpper(m.String()), step)
					if !sleepCtx(ctx, step) {
						break
					}
				}
				srv.SetMode(devserver.ModeOK)
				outage.Store(false)
				out.printf("demo: platform back up\n")
			}()
		}
		p := demoPerson(i)
		frame := p.xgh + "," + p.name + "," + p.id + "," + p.userType + "\r\n"
		scanned.Add(1)
		ok, err := presentCard(ctx, master, acks, frame)
		if err != nil {
			return t, err
		}
		if ok {
			stored.Add(1)
		}
		if !sleepCtx(ctx, o.Interval) {
			return t, ctx.Err()
		}
	}
	// Wait for the outage to end and the backlog to drain.
	drained := func() bool {
		qs, err := a.q.Stats()
		return !outage.Load() && err == nil && qs.Pending == 0 && srv.Stats().Accepted >= int(stored.Load())
	}
	if err := waitUntil(ctx, o.Outage+30*time.Second, drained); err != nil && ctx.Err() != nil {
		return t, ctx.Err()
	}
	if o.Outage > 0 {
		// The backlog's alert and its clearing.
		waitUntil(ctx, 15*time.Second, func() bool { return len(srv.Messages()) >= 2 })
	}
	progress()
	stopProgress()
	out.progressDone()
	for _, m := range srv.Messages() {
		out.printf("demo: alert to %s via the platform's msgsend: %s\n", m.Xgh, termtext.Line(m.Content))
	}
	qs, _ := a.q.Stats()
	stopAgent()
	if err := <-agentDone; err != nil {
		return t, err
	}
	agentDone <- nil // for the deferred stop

	t.Scanned, t.Stored, t.Dead = int(scanned.Load()), int(stored.Load()), int(qs.Dead)
	people := map[string]person{}
	for i := range o.Scans {
		p := demoPerson(i)
		people[p.xgh] = p
	}
	seen := map[string]int{}
	for _, r := range srv.Records() {
		seen[r.Xgh]++
		switch want, ok := people[r.Xgh]; {
		case seen[r.Xgh] > 1:
			t.Duplicates++
		case !ok || r.Name != want.name || r.IDCardPlain != want.id || r.UserType != want.userType ||
			r.TermName != "演示食堂 1 号机" || r.TermSn != "DEMO-0001":
			t.Wrong++
		default:
			t.Delivered++
		}
	}
	s := srv.Stats()
	t.TokenFetches = s.TokenFetches
	t.Alerts = len(srv.Messages())
	verdict := "OK: every scan arrived exactly once"
	if !t.ok(o.Scans) {
		verdict = "FAILED: not every scan arrived exactly once"
	}
	out.printf("\ndemo tally\n  scanned     %d\n  stored      %d (acknowledged to the scanner)\n  delivered   %d\n"+
		"  duplicates  %d\n  dead        %d\n  wrong       %d (fields or idCard not as scanned)\n  alerts      %d\n  token fetches %d, platform calls %d\n%s\n",
		t.Scanned, t.Stored, t.Delivered, t.Duplicates, t.Dead, t.Wrong, t.Alerts, s.TokenFetches, s.ScanCalls, verdict)
	return t, nil
}

// presentCard writes a frame and waits for the ack byte; with no answer it
// presents the card again, as a person at a gate would. It reports whether
// the scanner was told the scan was stored.
func presentCard(ctx context.Context, port io.Writer, acks <-chan byte, frame string) (bool, error) {
	for try := 0; try < 3; try++ {
		if _, err := io.WriteString(port, frame); err != nil {
			return false, fmt.Errorf("virtual scanner: %w", err)
		}
		timer := time.NewTimer(3 * time.Second)
		select {
		case b, ok := <-acks:
			timer.Stop()
			if !ok {
				return false, errors.New("virtual scanner: port closed")
			}
			return b == 0x06, nil
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return false, ctx.Err()
		}
	}
	return false, nil
}

// demoOut serialises the demo's lines, the agent's log and the progress line.
type demoOut struct {
	mu      sync.Mutex
	w       io.Writer
	live    bool
	last    string    // the current progress line
	printed string    // the last one printed (not live)
	at      time.Time // when it was printed
}

func (d *demoOut) Write(p []byte) (int, error) {
	d.printf("%s", p)
	return len(p), nil
}

func (d *demoOut) printf(format string, a ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.live && d.last != "" {
		fmt.Fprint(d.w, "\r\033[K")
	}
	fmt.Fprintf(d.w, format, a...)
	if d.live && d.last != "" {
		fmt.Fprint(d.w, d.last)
	}
}

func (d *demoOut) progress(line string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.last = line
	if d.live {
		fmt.Fprint(d.w, "\r\033[K"+line)
		return
	}
	// Not a terminal: a line every two seconds, not a redraw.
	if time.Since(d.at) >= 2*time.Second && line != d.printed {
		d.at, d.printed = time.Now(), line
		fmt.Fprintln(d.w, line)
	}
}

// progressDone ends the progress line, printing the final state.
func (d *demoOut) progressDone() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.live && d.last != "" {
		fmt.Fprintln(d.w)
	} else if !d.live && d.last != d.printed {
		fmt.Fprintln(d.w, d.last)
	}
	d.last = ""
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0 && !strings.EqualFold(os.Getenv("TERM"), "dumb")
}

// every calls fn every d until the returned stop is called.
func every(d time.Duration, fn func()) (stop func()) {
	done := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				fn()
			case <-done:
				return
			}
		}
	}()
	return func() { once.Do(func() { close(done) }); wg.Wait() }
}

func waitUntil(ctx context.Context, limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		if !sleepCtx(ctx, 20*time.Millisecond) {
			return ctx.Err()
		}
	}
	return nil
}

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
