// Package service runs scanagent as a system service (systemd on Linux, the
// service control manager on Windows) through github.com/kardianos/service.
// It builds the service definition (the absolute configuration path in the
// arguments, our own systemd unit, Windows recovery actions), bounds the
// control commands that can hang, and hosts the agent under the service
// manager: Start returns at once, Stop cancels and waits with a bound. It does
// not build the agent or parse the command line; cmd/scanagent does.
package service

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime"
	"time"

	kservice "github.com/kardianos/service"
)

// Name is the service's name for systemd (scanagent.service) and the
// Windows service control manager; also the Windows event log source.
const Name = "scanagent"

const (
	displayName = "scanagent"
	description = "Reads card and QR scans from serial devices and uploads them to the campus open platform."

	// DefaultControlTimeout bounds start, stop, restart, install and
	// uninstall from the command line (kardianos/service issue 337: a stop
	// can wait forever).
	DefaultControlTimeout = 45 * time.Second
)

// ErrNotInstalled is returned by Status when the service is not installed.
var ErrNotInstalled = kservice.ErrNotInstalled

// Definition is what `service install` records.
type Definition struct {
	Executable string // absolute path of scanagent(.exe)
	ConfigPath string // absolute path of the configuration file
	// ReadWritePaths are directories outside /var/lib/scanagent the agent
	// writes to (data_dir, the log file's directory); systemd only.
	ReadWritePaths []string
	// Windows: the directories the service writes (data_dir, the log
	// directory) and the files it reads (the configuration, a client
	// secret file). Install gives them an ACL of SYSTEM, Administrators
	// and the service's account only (lockdown_windows.go).
	PrivateDirs, PrivateFiles []string
}

// Arguments is the command line the service manager starts the executable
// with: the configuration path is absolute because a Windows service starts
// in System32.
func Arguments(configPath string) []string {
	return []string{"--config", configPath, "run"}
}

// Absolute returns path made absolute against the working directory and
// cleaned; install records it so the service does not depend on where it
// starts.
func Absolute(path string) (string, error) {
	if path == "" {
		return "", errors.New("no configuration path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("configuration path %s: %w", path, err)
	}
	return abs, nil
}

// recovery is what the Windows service manager does when the service fails:
// restart after 5 s, then 30 s, then every 60 s; the count resets after a
// day without failures.
var recovery = struct {
	delays      []time.Duration
	resetPeriod time.Duration
}{[]time.Duration{5 * time.Second, 30 * time.Second, 60 * time.Second}, 24 * time.Hour}

// kconfig is the kardianos service configuration for def.
func kconfig(def Definition) *kservice.Config {
	return &kservice.Config{
		Name:        Name,
		DisplayName: displayName,
		Description: description,
		Executable:  def.Executable,
		Arguments:   Arguments(def.ConfigPath),
		UserName:    runAs, // Windows: the virtual account, not LocalSystem
		Option: kservice.KeyValue{
			// Windows: kardianos sets one recovery action when OnFailure is
			// given; afterInstall replaces it with ours and adds the flag for
			// non-crash failures (a non-zero exit after a failed start).
			"OnFailure":              "restart",
			"OnFailureDelayDuration": recovery.delays[0].String(),
			"OnFailureResetPeriod":   int(recovery.resetPeriod / time.Second),
			"StartType":              "automatic",
			// systemd: our unit, not kardianos' (RestartSec=120, no
			// hardening). It holds no template actions, so it is written as is.
			"SystemdScript": UnitText(Unit{Executable: def.Executable, ConfigPath: def.ConfigPath, ReadWritePaths: def.ReadWritePaths}),
		},
	}
}

// Status is the state of the installed service.
type Status string

const (
	Running Status = "running"
	Stopped Status = "stopped"
)

// Manager installs and controls the service; every call is bounded by
// Timeout.
type Manager struct {
	svc     kservice.Service
	timeout time.Duration
	// beforeInstall may refuse the install (Windows: an executable or
	// configuration ordinary users can change); afterInstall runs after a
	// successful install (Windows: recovery actions, ACLs). Variables for
	// tests.
	beforeInstall, afterInstall func() error
}

// NewManager returns a manager for def (only Name matters for the control
// commands); timeout 0 means DefaultControlTimeout.
func NewManager(def Definition, timeout time.Duration) (*Manager, error) {
	if timeout <= 0 {
		timeout = DefaultControlTimeout
	}
	s, err := kservice.New(noop{}, kconfig(def))
	if err != nil {
		return nil, fmt.Errorf("service manager: %w", err)
	}
	return &Manager{svc: s, timeout: timeout,
		beforeInstall: func() error { return beforeInstall(def) },
		afterInstall:  func() error { return afterInstall(def) }}, nil
}

// Platform names the service manager found: "linux-systemd",
// "windows-service", "unix-systemv" (no systemd, as in a container) ….
func Platform() string { return kservice.Platform() }

// Interactive reports whether the process runs from a terminal rather than
// under the service manager.
func Interactive() bool { return kservice.Interactive() }

// Supported says whether install can work here: systemd or Windows.
func Supported() error {
	switch p := Platform(); p {
	case "linux-systemd", "windows-service":
		return nil
	default:
		return fmt.Errorf("the service commands support systemd and Windows; this system uses %q: "+
			"install packaging/systemd/scanagent.service by hand or run `scanagent run` from your init system", p)
	}
}

// Install registers the service; it does not start it.
func (m *Manager) Install() error {
	return m.control("install", func() error {
		if err := m.beforeInstall(); err != nil {
			return err
		}
		if err := m.svc.Install(); err != nil {
			return err
		}
		return m.afterInstall()
	})
}

// Uninstall stops nothing: it removes the registration (stop first).
func (m *Manager) Uninstall() error { return m.control("uninstall", m.svc.Uninstall) }

// Start asks the service manager to start the service.
func (m *Manager) Start() error { return m.control("start", m.svc.Start) }

// Stop asks the service manager to stop the service and waits, at most
// Timeout.
func (m *Manager) Stop() error { return m.control("stop", m.svc.Stop) }

// Restart stops and starts the service, at most Timeout.
func (m *Manager) Restart() error { return m.control("restart", m.svc.Restart) }

// Status reports whether the service runs; ErrNotInstalled when it is not
// installed.
func (m *Manager) Status() (Status, error) {
	var st kservice.Status
	err := m.control("status", func() error {
		var err error
		st, err = m.svc.Status()
		return err
	})
	if err != nil {
		return "", err
	}
	switch st {
	case kservice.StatusRunning:
		return Running, nil
	case kservice.StatusStopped:
		return Stopped, nil
	}
	return "", fmt.Errorf("status: unknown")
}

// control runs f bounded by the timeout and words its error for the user.
func (m *Manager) control(what string, f func() error) error {
	err := withTimeout(m.timeout, f)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kservice.ErrNotInstalled):
		return fmt.Errorf("%s: %w", what, ErrNotInstalled)
	case errors.Is(err, errTimeout):
		return fmt.Errorf("%s: no answer from the service manager after %s; check with `scanagent service status`", what, m.timeout)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s: %w (%s)", what, err, elevateHint())
	}
	return fmt.Errorf("%s: %w", what, err)
}

func elevateHint() string {
	if runtime.GOOS == "windows" {
		return "run it from a command prompt opened with \"Run as administrator\""
	}
	return "run it as root, e.g. with sudo"
}

var errTimeout = errors.New("timed out")

// withTimeout runs f and returns its error, or errTimeout when f has not
// returned after d. f is then left running: the command-line process exits
// soon after, which ends it.
func withTimeout(d time.Duration, f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return errTimeout
	}
}

// noop is the program of a Manager, which never runs it.
type noop struct{}

func (noop) Start(kservice.Service) error { return nil }
func (noop) Stop(kservice.Service) error  { return nil }
