package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"scanagent/internal/config"
	"scanagent/internal/logfile"
	"scanagent/internal/service"
)

// serviceCmd is `service install|uninstall|start|stop|restart|status`: the
// system service through kardianos/service (internal/service).
type serviceCmd struct {
	// newManager builds the manager; a field for tests.
	newManager func(service.Definition, time.Duration) (serviceManager, error)
	// supported says whether install can work here (nil = service.Supported).
	supported func() error
	// lookupUser finds the Linux service user (nil = user.Lookup).
	lookupUser func(name string) (*user.User, error)
}

// serviceManager is what serviceCmd needs of *service.Manager.
type serviceManager interface {
	Install() error
	Uninstall() error
	Start() error
	Stop() error
	Restart() error
	Status() (service.Status, error)
}

func (c *serviceCmd) Run(_ context.Context, e *env, args []string) error {
	if err := groupArgs(e, "service", args); err != nil {
		return err
	}
	action := args[0]
	if _, ok := lookupHelp("service " + action); !ok {
		return unknownSubcommand("service", action)
	}
	fs := newFlagSet("service " + action)
	timeout := fs.Duration("timeout", service.DefaultControlTimeout, "how long to wait for the service manager")
	if err := parseFlags(e, fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("service %s: unexpected argument %q", action, fs.Arg(0))
	}
	newManager, supported := c.newManager, c.supported
	if newManager == nil {
		newManager = func(d service.Definition, t time.Duration) (serviceManager, error) { return service.NewManager(d, t) }
	}
	if supported == nil {
		supported = service.Supported
	}

	if err := supported(); err != nil {
		if action == "install" {
			return err
		}
		return fmt.Errorf("service %s: %w; without a service manager, see whether an agent runs with: ps -C scanagent -o pid,args", action, err)
	}
	var def service.Definition
	if action == "install" {
		var err error
		if def, err = c.definition(e); err != nil {
			return err
		}
	}
	m, err := newManager(def, *timeout)
	if err != nil {
		return err
	}
	switch action {
	case "install":
		if err := m.Install(); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "installed the %s service: %s --config %s run\n", service.Name, def.Executable, def.ConfigPath)
		fmt.Fprintf(e.stdout, "it starts at boot; start it now with: %s service start\n", filepath.Base(def.Executable))
		if runtime.GOOS == "windows" {
			fmt.Fprintf(e.stdout, "it runs as %s; only SYSTEM, Administrators and that account may use %s\n",
				service.VirtualAccount, strings.Join(append(def.PrivateDirs, def.PrivateFiles...), ", "))
			fmt.Fprintf(e.stdout, "logs: %s (unless log_file is set) and the Windows event log, source %q\n",
				config.DefaultServiceLogFile(), service.Name)
		} else {
			fmt.Fprintf(e.stdout, "logs: journalctl -u %s\n", service.Name)
		}
		return nil
	case "uninstall":
		if st, err := m.Status(); err == nil && st == service.Running {
			if err := m.Stop(); err != nil {
				return err
			}
		}
		if err := m.Uninstall(); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "removed the %s service (configuration and queue are kept)\n", service.Name)
		return nil
	case "start":
		err = m.Start()
	case "stop":
		err = m.Stop()
	case "restart":
		err = m.Restart()
	case "status":
		st, err := m.Status()
		if errors.Is(err, service.ErrNotInstalled) {
			fmt.Fprintf(e.stdout, "%s: not installed\n", service.Name)
			return exitError{1}
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s: %s\n", service.Name, st)
		if st != service.Running {
			return exitError{1}
		}
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: %s done\n", service.Name, action)
	return nil
}

// definition is what install records: this executable and the absolute
// configuration path. It checks the configuration and warns (the service
// can be installed before the configuration is written), and on Linux
// refuses what the hardened unit cannot run.
func (c *serviceCmd) definition(e *env) (service.Definition, error) {
	exe, err := os.Executable()
	if err != nil {
		return service.Definition{}, fmt.Errorf("cannot find this executable: %w", err)
	}
	cfgPath, err := service.Absolute(e.configPath)
	if err != nil {
		return service.Definition{}, err
	}
	def := service.Definition{Executable: exe, ConfigPath: cfgPath}
	cfg, err := config.Load(cfgPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		fmt.Fprintf(e.stderr, "scanagent: warning: %s does not exist yet; write it (scanagent config example) before starting the service\n", cfgPath)
	case err != nil:
		warnProblems(e.stderr, err)
	default:
		if probs := cfg.Validate(); len(probs) > 0 {
			warnProblems(e.stderr, probs)
		}
	}
	if runtime.GOOS == "windows" {
		def.PrivateDirs, def.PrivateFiles = privatePaths(cfg, cfgPath)
		return def, nil
	}
	if runtime.GOOS != "linux" {
		return def, nil
	}
	// The unit runs as the user scanagent with ProtectHome=yes and a
	// read-only file system outside /var/lib/scanagent.
	lookup := c.lookupUser
	if lookup == nil {
		lookup = user.Lookup
	}
	if _, err := lookup("scanagent"); err != nil {
		return def, errors.New("there is no user scanagent for the service to run as; create it with:\n" +
			"  useradd --system --user-group --groups dialout --home-dir /var/lib/scanagent --shell /usr/sbin/nologin scanagent\n" +
			"(the .deb and .rpm packages do this and install the unit themselves)")
	}
	for _, p := range []string{exe, cfgPath} {
		if underHome(p) {
			return def, fmt.Errorf("%s is under a home directory, which the service cannot see (ProtectHome=yes): "+
				"put the binary in /usr/local/bin and the configuration in /etc/scanagent", p)
		}
	}
	if cfg != nil {
		def.ReadWritePaths = writablePaths(cfg)
	}
	return def, nil
}

// privatePaths are what the Windows service alone (with SYSTEM and
// Administrators) may use: the directories it writes (data_dir, the log's
// directory) and the files it reads (the configuration, a client secret
// file). cfg may be nil (no configuration yet): the defaults.
func privatePaths(cfg *config.Config, cfgPath string) (dirs, files []string) {
	dataDir, logFile := config.DefaultDataDir(), config.DefaultServiceLogFile()
	files = []string{cfgPath}
	if cfg != nil {
		dataDir = cfg.Agent.DataDir
		if cfg.Agent.LogFile != "" {
			logFile = cfg.Agent.LogFile
		}
		if f := cfg.Platform.ClientSecretFile; f != "" {
			files = append(files, f)
		}
	}
	dirs = []string{filepath.Clean(dataDir)}
	if d := filepath.Dir(filepath.Clean(logFile)); logFile != "" && d != dirs[0] {
		dirs = append(dirs, d)
	}
	return dirs, files
}

// writablePaths are the directories outside the StateDirectory the agent
// writes to.
func writablePaths(cfg *config.Config) []string {
	var out []string
	add := func(dir string) {
		if dir == "" || dir == "/var/lib/scanagent" || strings.HasPrefix(dir, "/var/lib/scanagent/") {
			return
		}
		for _, o := range out {
			if o == dir {
				return
			}
		}
		out = append(out, dir)
	}
	add(filepath.Clean(cfg.Agent.DataDir))
	if cfg.Agent.LogFile != "" {
		add(filepath.Dir(filepath.Clean(cfg.Agent.LogFile)))
	}
	return out
}

func underHome(p string) bool {
	for _, h := range []string{"/home/", "/root/", "/run/user/"} {
		if strings.HasPrefix(p, h) {
			return true
		}
	}
	return false
}

func warnProblems(w io.Writer, err error) {
	var probs config.Problems
	if errors.As(err, &probs) {
		for _, p := range probs {
			fmt.Fprintf(w, "scanagent: warning: %s\n", p)
		}
	} else {
		fmt.Fprintf(w, "scanagent: warning: %v\n", err)
	}
	fmt.Fprintln(w, "scanagent: warning: the service will not start until the configuration is fixed (scanagent config check)")
}

// runAsService runs the agent under the service manager (`run` when
// service.Interactive() is false). A failure to start — a configuration
// error above all — is written to the log file as well as returned (the
// journal on Linux; the Windows event log through the host).
func runAsService(ctx context.Context, e *env) error {
	defaultLog := config.DefaultServiceLogFile()
	return service.Host(ctx, func(ctx context.Context) error {
		return runAgent(ctx, e, defaultLog)
	}, service.HostOptions{})
}

// logStartFailure appends a configuration failure to the log file in the
// exact words of `config check` (PATH:LINE:COL: message): a technician reads
// it there, not in an opaque service error code.
func logStartFailure(path string, err error) {
	lf, lerr := logfile.Open(path, 0, 0)
	if lerr != nil {
		return
	}
	defer lf.Close()
	log := newLogger(lf, "info")
	log.Error("cannot start: the configuration has problems; fix them and check with `scanagent config check`")
	report(lf, err)
}
