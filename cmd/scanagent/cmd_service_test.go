package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"scanagent/internal/config"
	"scanagent/internal/service"
)

type fakeManager struct {
	calls  []string
	status service.Status
	err    error
}

func (f *fakeManager) do(s string) error { f.calls = append(f.calls, s); return f.err }
func (f *fakeManager) Install() error    { return f.do("install") }
func (f *fakeManager) Uninstall() error  { return f.do("uninstall") }
func (f *fakeManager) Start() error      { return f.do("start") }
func (f *fakeManager) Stop() error       { return f.do("stop") }
func (f *fakeManager) Restart() error    { return f.do("restart") }
func (f *fakeManager) Status() (service.Status, error) {
	if f.status == "" {
		return "", service.ErrNotInstalled
	}
	return f.status, nil
}

// fakeServiceCmd is a serviceCmd on a fake manager that records the
// definition it was given.
func fakeServiceCmd(m *fakeManager, def *service.Definition) *serviceCmd {
	return &serviceCmd{
		newManager: func(d service.Definition, _ time.Duration) (serviceManager, error) {
			*def = d
			return m, nil
		},
		supported:  func() error { return nil },
		lookupUser: func(string) (*user.User, error) { return &user.User{}, nil },
	}
}

func runService(t *testing.T, c *serviceCmd, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb}
	rest, err := parseGlobal(e, args)
	if err == nil {
		err = c.Run(context.Background(), e, rest[1:]) // rest[0] is "service"
	}
	return report(&errb, err), out.String(), errb.String()
}

func TestServiceInstallRecordsAbsoluteConfig(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	dataDir := filepath.Join(dir, "data")
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(validConfig(t, dataDir, "http://127.0.0.1:1", "/dev/ttyUSB0")), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &fakeManager{}
	var def service.Definition
	code, out, errs := runService(t, fakeServiceCmd(m, &def), "service", "install", "--config", "config.toml")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if want := filepath.Join(dir, "config.toml"); def.ConfigPath != want {
		t.Errorf("recorded config %q, want %q", def.ConfigPath, want)
	}
	if !filepath.IsAbs(def.Executable) {
		t.Errorf("executable %q is not absolute", def.Executable)
	}
	if runtime.GOOS == "linux" && !reflect.DeepEqual(def.ReadWritePaths, []string{dataDir}) {
		t.Errorf("ReadWritePaths %q, want [%s]", def.ReadWritePaths, dataDir)
	}
	if !reflect.DeepEqual(m.calls, []string{"install"}) || !strings.Contains(out, "installed the scanagent service") {
		t.Errorf("calls %v, stdout %q", m.calls, out)
	}
	if errs != "" {
		t.Errorf("warnings for a valid config: %q", errs)
	}
}

func TestServiceInstallWarnsAboutConfig(t *testing.T) {
	bad := writeFile(t, "config.toml", "[agent]\ndat_dir = 'x'\n")
	var def service.Definition
	code, _, errs := runService(t, fakeServiceCmd(&fakeManager{}, &def), "-c", bad, "service", "install")
	if code != 0 {
		t.Fatalf("exit %d; the service can be installed before the config is right", code)
	}
	if !regexp.MustCompile(regexp.QuoteMeta(bad)+`:2:1: .*dat_dir`).MatchString(errs) || !strings.Contains(errs, "will not start") {
		t.Errorf("stderr %q lacks the config problem", errs)
	}
	missing := filepath.Join(t.TempDir(), "none.toml")
	if code, _, errs := runService(t, fakeServiceCmd(&fakeManager{}, &def), "-c", missing, "service", "install"); code != 0 || !strings.Contains(errs, "does not exist yet") {
		t.Errorf("missing config: exit %d, stderr %q", code, errs)
	}
}

func TestServiceInstallRefusals(t *testing.T) {
	var def service.Definition
	c := fakeServiceCmd(&fakeManager{}, &def)
	c.supported = func() error { return errors.New(`this system uses "unix-systemv"`) }
	if code, _, errs := runService(t, c, "service", "install"); code != 1 || !strings.Contains(errs, "unix-systemv") {
		t.Errorf("unsupported: exit %d, stderr %q", code, errs)
	}
	// Every action says so, with the next step, not a raw exit status.
	for _, action := range []string{"status", "start", "stop", "restart", "uninstall"} {
		code, _, errs := runService(t, c, "service", action)
		if code != 1 || !strings.Contains(errs, "service "+action+`: this system uses "unix-systemv"`) || !strings.Contains(errs, "ps -C scanagent") {
			t.Errorf("unsupported %s: exit %d, stderr %q", action, code, errs)
		}
	}
	if runtime.GOOS != "linux" {
		return
	}
	c = fakeServiceCmd(&fakeManager{}, &def)
	c.lookupUser = func(string) (*user.User, error) { return nil, user.UnknownUserError("scanagent") }
	if code, _, errs := runService(t, c, "service", "install"); code != 1 || !strings.Contains(errs, "useradd --system") {
		t.Errorf("no user: exit %d, stderr %q", code, errs)
	}
	c = fakeServiceCmd(&fakeManager{}, &def)
	if code, _, errs := runService(t, c, "-c", "/home/tech/config.toml", "service", "install"); code != 1 || !strings.Contains(errs, "ProtectHome") {
		t.Errorf("config under /home: exit %d, stderr %q", code, errs)
	}
}

func TestServiceControl(t *testing.T) {
	var def service.Definition
	for _, tc := range []struct {
		args   []string
		status service.Status
		code   int
		calls  []string
		out    string
	}{
		{[]string{"stop"}, service.Running, 0, []string{"stop"}, "scanagent: stop done"},
		{[]string{"start"}, service.Stopped, 0, []string{"start"}, "scanagent: start done"},
		{[]string{"restart", "--timeout", "5s"}, service.Running, 0, []string{"restart"}, "restart done"},
		{[]string{"status"}, service.Running, 0, nil, "scanagent: running"},
		{[]string{"status"}, service.Stopped, 1, nil, "scanagent: stopped"},
		{[]string{"status"}, "", 1, nil, "scanagent: not installed"},
		{[]string{"uninstall"}, service.Running, 0, []string{"stop", "uninstall"}, "removed"},
		{[]string{"uninstall"}, service.Stopped, 0, []string{"uninstall"}, "removed"},
	} {
		m := &fakeManager{status: tc.status}
		code, out, errs := runService(t, fakeServiceCmd(m, &def), append([]string{"service"}, tc.args...)...)
		if code != tc.code || !reflect.DeepEqual(m.calls, tc.calls) || !strings.Contains(out, tc.out) {
			t.Errorf("%v (%s): exit %d, calls %v, out %q, err %q; want %d, %v, %q", tc.args, tc.status, code, m.calls, out, errs, tc.code, tc.calls, tc.out)
		}
	}
	for _, args := range [][]string{{"service"}, {"service", "frob"}, {"service", "stop", "now"}, {"service", "stop", "--timeout", "x"}} {
		if code, _, errs := runService(t, fakeServiceCmd(&fakeManager{}, &def), args...); code != 2 {
			t.Errorf("%v: exit %d, want 2; stderr %q", args, code, errs)
		}
	}
}

// TestRunUnderServiceManager is `run` started by the service manager: it
// goes through the kardianos host (Start launches the agent, a stop signal
// cancels it) whatever the init system of the test machine.
func TestRunUnderServiceManager(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, "config.toml", validConfig(t, filepath.Join(dir, "data"), "http://127.0.0.1:1", filepath.Join(dir, "no-such-port")))
	c := &runCmd{interactive: func() bool { return false }}
	errb := &syncBuffer{}
	e := &env{stdout: &bytes.Buffer{}, stderr: errb, configPath: cfg}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, e, nil) }()
	for !strings.Contains(errb.String(), "scanagent started") {
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v; log:\n%s", err, errb.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v; log:\n%s", err, errb.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not stop")
	}
	if !strings.Contains(errb.String(), "scanagent stopped") {
		t.Errorf("log:\n%s", errb.String())
	}
}

// TestServiceConfigError: a configuration error when the service starts
// ends the service with the PATH:LINE:COL message of `config check`, also
// in the service log file (Windows, where log_file defaults to it).
func TestServiceConfigError(t *testing.T) {
	cfg := writeFile(t, "config.toml", "[agent]\nlog_level = 'info'\nadmin_listn = ''\n")
	logPath := filepath.Join(t.TempDir(), "log", "scanagent.log")
	var errb bytes.Buffer
	e := &env{stdout: &bytes.Buffer{}, stderr: &errb, configPath: cfg}
	err := runAgent(context.Background(), e, logPath)
	if code := report(&errb, err); code != 2 {
		t.Fatalf("exit %d, want 2; stderr %q", code, errb.String())
	}
	want := regexp.MustCompile(`(?m)^scanagent: ` + regexp.QuoteMeta(cfg) + `:3:1: .*admin_listn`)
	if !want.MatchString(errb.String()) {
		t.Errorf("stderr %q does not match %s", errb.String(), want)
	}
	b, rerr := os.ReadFile(logPath)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if !want.MatchString(string(b)) || !strings.Contains(string(b), "level=ERROR") {
		t.Errorf("log file %q does not match %s", b, want)
	}
	if fi, err := os.Stat(logPath); err == nil && runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("log file mode %v, want 0600", fi.Mode().Perm())
	}

	// And through the host, as the service manager runs it.
	c := &runCmd{interactive: func() bool { return false }}
	errb.Reset()
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background(), e, nil) }()
	select {
	case err := <-done:
		if code := report(&errb, err); code != 2 || !want.MatchString(errb.String()) {
			t.Errorf("exit %d, stderr %q", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the service did not end after a configuration error")
	}
}

// TestPrivatePaths: what the Windows install locks down: data_dir and the
// log's directory (once when they are the same), the configuration and a
// client secret file; the defaults without a configuration.
func TestPrivatePaths(t *testing.T) {
	cfg := new(config.Config)
	*cfg = config.Default()
	cfg.Agent.DataDir = filepath.Join("D:", "scanagent", "data")
	cfg.Agent.LogFile = filepath.Join("D:", "scanagent", "logs", "scanagent.log")
	cfg.Platform.ClientSecretFile = filepath.Join("D:", "scanagent", "secret.txt")
	dirs, files := privatePaths(cfg, "cfg.toml")
	if want := []string{cfg.Agent.DataDir, filepath.Join("D:", "scanagent", "logs")}; !reflect.DeepEqual(dirs, want) {
		t.Errorf("dirs %q, want %q", dirs, want)
	}
	if want := []string{"cfg.toml", cfg.Platform.ClientSecretFile}; !reflect.DeepEqual(files, want) {
		t.Errorf("files %q, want %q", files, want)
	}
	cfg.Agent.LogFile = filepath.Join(cfg.Agent.DataDir, "agent.log")
	if dirs, _ := privatePaths(cfg, "cfg.toml"); len(dirs) != 1 {
		t.Errorf("log in data_dir: dirs %q, want data_dir once", dirs)
	}
	dirs, files = privatePaths(nil, "cfg.toml")
	if len(dirs) == 0 || dirs[0] != config.DefaultDataDir() || !reflect.DeepEqual(files, []string{"cfg.toml"}) {
		t.Errorf("no configuration: dirs %q files %q", dirs, files)
	}
}
