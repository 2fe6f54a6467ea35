package service

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	kservice "github.com/kardianos/service"
)

var update = flag.Bool("update", false, "rewrite packaging/systemd/scanagent.service")

func TestArguments(t *testing.T) {
	got := Arguments(`C:\Program Files\scanagent\config.toml`)
	want := []string{"--config", `C:\Program Files\scanagent\config.toml`, "run"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestAbsolute(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, tc := range []struct{ in, want string }{
		{"config.toml", filepath.Join(dir, "config.toml")},
		{"./etc/../config.toml", filepath.Join(dir, "config.toml")},
		{filepath.Join(dir, "a", "b.toml"), filepath.Join(dir, "a", "b.toml")},
	} {
		got, err := Absolute(tc.in)
		if err != nil {
			t.Fatalf("Absolute(%q): %v", tc.in, err)
		}
		if got != tc.want {
			t.Errorf("Absolute(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if _, err := Absolute(""); err == nil {
		t.Error("Absolute(\"\"): no error")
	}
}

// TestPackagedUnitIsTheFile keeps packaging/systemd/scanagent.service
// identical to what `service install` writes for the packaged paths. Run
// with -update to rewrite the file.
func TestPackagedUnitIsTheFile(t *testing.T) {
	path := filepath.Join("..", "..", "packaging", "systemd", "scanagent.service")
	want := UnitText(PackagedUnit)
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("%s differs from UnitText(PackagedUnit); run go test ./internal/service -run PackagedUnit -update", path)
	}
}

func TestUnitText(t *testing.T) {
	u := UnitText(Unit{
		Executable:     "/opt/scan agent/scanagent",
		ConfigPath:     "/etc/scanagent/100%.toml",
		ReadWritePaths: []string{"/srv/scan data", "/var/log/scanagent"},
	})
	for _, want := range []string{
		"\nExecStart=\"/opt/scan agent/scanagent\" --config /etc/scanagent/100%%.toml run --wait-config\n",
		"\nReadWritePaths=-\"/srv/scan data\" -/var/log/scanagent\n",
		"\nRestart=always\n", "\nRestartSec=5\n", "\nUser=scanagent\n", "\nSupplementaryGroups=dialout\n",
		"\nStateDirectory=scanagent\n", "\nProtectSystem=strict\n", "\nNoNewPrivileges=yes\n",
	} {
		if !strings.Contains(u, want) {
			t.Errorf("unit lacks %q:\n%s", want, u)
		}
	}
	// kardianos renders SystemdScript with its template engine: the text
	// must hold no action, so that it is written as is.
	if strings.Contains(u, "{{") {
		t.Errorf("unit holds a template action:\n%s", u)
	}
	if pu := UnitText(PackagedUnit); strings.Contains(pu, "\nReadWritePaths") || strings.Contains(pu, "@EXE") ||
		strings.Contains(pu, "@CONFIG") || strings.Contains(pu, "@READWRITE") {
		t.Errorf("packaged unit has a placeholder or ReadWritePaths:\n%s", UnitText(PackagedUnit))
	}
}

func TestSystemdQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/bin/scanagent": "/usr/bin/scanagent",
		"/a b/c":             `"/a b/c"`,
		`/a"b`:               `"/a\"b"`,
		"/a$HOME%i":          "/a$$HOME%%i",
	} {
		if got := systemdQuote(in); got != want {
			t.Errorf("systemdQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestKConfig(t *testing.T) {
	def := Definition{Executable: `C:\Program Files\scanagent\scanagent.exe`, ConfigPath: `C:\ProgramData\scanagent\config.toml`}
	c := kconfig(def)
	if c.Name != Name || c.Executable != def.Executable {
		t.Errorf("name %q executable %q", c.Name, c.Executable)
	}
	if want := Arguments(def.ConfigPath); !reflect.DeepEqual(c.Arguments, want) {
		t.Errorf("arguments %q, want %q", c.Arguments, want)
	}
	if c.Option["OnFailure"] != "restart" || c.Option["StartType"] != "automatic" {
		t.Errorf("options %v", c.Option)
	}
	if got := c.Option["OnFailureResetPeriod"]; got != 86400 {
		t.Errorf("OnFailureResetPeriod = %v, want 86400", got)
	}
	if s, _ := c.Option["SystemdScript"].(string); !strings.Contains(s, "ExecStart=") {
		t.Errorf("SystemdScript is not our unit: %q", s)
	}
}

func TestWithTimeout(t *testing.T) {
	boom := errors.New("boom")
	if err := withTimeout(time.Second, func() error { return boom }); err != boom {
		t.Errorf("got %v, want boom", err)
	}
	release := make(chan struct{})
	defer close(release)
	start := time.Now()
	err := withTimeout(20*time.Millisecond, func() error { <-release; return nil })
	if !errors.Is(err, errTimeout) {
		t.Errorf("got %v, want errTimeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("returned after %s", d)
	}
}

// fakeSystem and fakeService stand in for the init system through
// kardianos' own interfaces (ChooseSystem): in a container the platform is
// unix-systemv and everything is interactive.
type fakeSystem struct{ svc *fakeService }

func (f fakeSystem) String() string    { return "fake" }
func (f fakeSystem) Detect() bool      { return true }
func (f fakeSystem) Interactive() bool { return false }
func (f fakeSystem) New(i kservice.Interface, c *kservice.Config) (kservice.Service, error) {
	f.svc.i, f.svc.cfg = i, c
	return f.svc, nil
}

// fakeService is a service manager: Run starts the program, waits for a
// stop request (stopReq) or for RunWait, and stops it.
type fakeService struct {
	i       kservice.Interface
	cfg     *kservice.Config
	stopReq chan struct{}
	block   chan struct{} // Stop blocks on it when non-nil (issue 337)
	mu      sync.Mutex
	calls   []string
}

func (f *fakeService) record(s string) {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	f.mu.Unlock()
}

func (f *fakeService) Run() error {
	if err := f.i.Start(f); err != nil {
		return err
	}
	if wait, ok := f.cfg.Option["RunWait"].(func()); ok {
		wait()
	} else {
		<-f.stopReq
	}
	return f.i.Stop(f)
}
func (f *fakeService) Start() error { f.record("start"); return nil }
func (f *fakeService) Stop() error {
	f.record("stop")
	if f.block != nil {
		<-f.block
	}
	return nil
}
func (f *fakeService) Restart() error   { f.record("restart"); return nil }
func (f *fakeService) Install() error   { f.record("install"); return nil }
func (f *fakeService) Uninstall() error { f.record("uninstall"); return nil }
func (f *fakeService) Logger(chan<- error) (kservice.Logger, error) {
	return kservice.ConsoleLogger, nil
}
func (f *fakeService) SystemLogger(chan<- error) (kservice.Logger, error) {
	return kservice.ConsoleLogger, nil
}
func (f *fakeService) String() string                   { return "fake" }
func (f *fakeService) Platform() string                 { return "fake" }
func (f *fakeService) Status() (kservice.Status, error) { return kservice.StatusStopped, nil }

func useFake(t *testing.T) *fakeService {
	t.Helper()
	f := &fakeService{stopReq: make(chan struct{})}
	saved := kservice.AvailableSystems()
	kservice.ChooseSystem(fakeSystem{f})
	t.Cleanup(func() { kservice.ChooseSystem(saved...) })
	return f
}

func TestManagerThroughKardianos(t *testing.T) {
	f := useFake(t)
	def := Definition{Executable: "/usr/bin/scanagent", ConfigPath: "/etc/scanagent/config.toml"}
	m, err := NewManager(def, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	installed := false
	m.afterInstall = func() error { installed = true; return nil }
	if err := m.Install(); err != nil {
		t.Fatal(err)
	}
	if !installed {
		t.Error("afterInstall (Windows recovery actions) not called")
	}
	if want := Arguments(def.ConfigPath); !reflect.DeepEqual(f.cfg.Arguments, want) {
		t.Errorf("kardianos got arguments %q, want %q", f.cfg.Arguments, want)
	}
	if st, err := m.Status(); err != nil || st != Stopped {
		t.Errorf("status %q, %v", st, err)
	}

	// A stop that never answers (kardianos issue 337) is bounded.
	f.block = make(chan struct{})
	defer close(f.block)
	start := time.Now()
	err = m.Stop()
	if err == nil || !strings.Contains(err.Error(), "no answer from the service manager") {
		t.Errorf("Stop: got %v, want a timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Stop returned after %s", d)
	}
}

type events struct {
	mu   sync.Mutex
	msgs []string
}

func (e *events) Info(v ...any) error    { return e.add("info: ", v) }
func (e *events) Warning(v ...any) error { return e.add("warning: ", v) }
func (e *events) Error(v ...any) error   { return e.add("error: ", v) }
func (e *events) add(p string, v []any) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, x := range v {
		p += x.(string)
	}
	e.msgs = append(e.msgs, p)
	return nil
}
func (e *events) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.msgs, "\n")
}

// TestHostStop is the non-interactive path: the manager starts the
// program (Start returns at once with the agent running), then a stop
// request cancels the agent's context and Run returns its result.
func TestHostStop(t *testing.T) {
	useFake(t)
	ctx, stop := context.WithCancel(context.Background())
	running := make(chan struct{})
	ev := &events{}
	done := make(chan error, 1)
	go func() {
		done <- Host(ctx, func(ctx context.Context) error {
			if EventLog(ctx) != ev {
				t.Error("the agent's context does not carry the event log")
			}
			close(running)
			<-ctx.Done()
			return nil
		}, HostOptions{Events: ev})
	}()
	<-running
	stop() // SIGTERM
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Host: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Host did not return after the stop request")
	}
	if got := ev.String(); !strings.Contains(got, "info: scanagent service starting") || !strings.Contains(got, "info: scanagent service stopped") {
		t.Errorf("events:\n%s", got)
	}
}

// TestHostRunFails: the agent ends by itself (a configuration error at
// start): Host returns the error at once, so the manager restarts the
// service, and the event log has the message.
func TestHostRunFails(t *testing.T) {
	useFake(t)
	ev := &events{}
	cfgErr := errors.New(`C:\ProgramData\scanagent\config.toml:3:1: unknown key "dat_dir" (did you mean data_dir?)`)
	done := make(chan error, 1)
	go func() {
		done <- Host(context.Background(), func(context.Context) error { return cfgErr }, HostOptions{Events: ev})
	}()
	select {
	case err := <-done:
		if err != cfgErr {
			t.Fatalf("Host: got %v, want the configuration error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Host did not return after the agent failed")
	}
	if got := ev.String(); !strings.Contains(got, "error: scanagent service failed:\n"+cfgErr.Error()) {
		t.Errorf("events:\n%s", got)
	}
}

// TestProgramStopBounded: an agent that ignores its context does not hold
// the service manager past the stop timeout, and that is not a failure.
func TestProgramStopBounded(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	p := newProgram(func(context.Context) error { <-release; return nil }, 30*time.Millisecond)
	ev := &events{}
	p.events = ev
	if err := p.Start(nil); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := p.Stop(nil); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Stop returned after %s", d)
	}
	if !strings.Contains(ev.String(), "did not stop within") {
		t.Errorf("events:\n%s", ev.String())
	}
}

// TestProgramSelfStop: on Windows the host ends only on a control request,
// so a failed agent asks the manager to stop the service, and Stop returns
// the failure (a non-zero exit code: recovery restarts the service).
func TestProgramSelfStop(t *testing.T) {
	f := &fakeService{}
	boom := errors.New("boom")
	p := newProgram(func(context.Context) error { return boom }, time.Second)
	asked := make(chan struct{})
	p.selfStop = func(s kservice.Service) error {
		if s != f {
			t.Errorf("selfStop got %v", s)
		}
		close(asked)
		return nil
	}
	if err := p.Start(f); err != nil {
		t.Fatal(err)
	}
	select {
	case <-asked:
	case <-time.After(5 * time.Second):
		t.Fatal("the program did not ask to be stopped")
	}
	if err := p.Stop(f); err != boom {
		t.Errorf("Stop: got %v, want boom", err)
	}
}

func TestSupported(t *testing.T) {
	useFake(t)
	err := Supported()
	if err == nil || !strings.Contains(err.Error(), `"fake"`) {
		t.Errorf("got %v, want an error naming the platform", err)
	}
}

// TestInstallRefusedBeforeRegistering: a refusal of beforeInstall (Windows:
// an exe or config ordinary users can change) registers nothing.
func TestInstallRefusedBeforeRegistering(t *testing.T) {
	f := useFake(t)
	m, err := NewManager(Definition{Executable: "/usr/bin/scanagent", ConfigPath: "/etc/scanagent/config.toml"}, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	m.beforeInstall = func() error { return errors.New("writable by Users") }
	m.afterInstall = func() error { t.Error("afterInstall after a refusal"); return nil }
	if err := m.Install(); err == nil || !strings.Contains(err.Error(), "writable by Users") {
		t.Fatalf("Install: %v, want the refusal", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) != 0 {
		t.Fatalf("kardianos was called: %q", f.calls)
	}
}
