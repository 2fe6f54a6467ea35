package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"scanagent/internal/logs"
	"scanagent/internal/service"
)

// runCmd runs the agent in the foreground until the context ends (SIGINT or
// SIGTERM). Started by the service manager (systemd, the Windows service
// control manager), it runs the same agent through the service host.
type runCmd struct {
	// interactive reports whether a person started the command rather than
	// the service manager; a field for tests (nil = service.Interactive).
	interactive func() bool
}

func (c *runCmd) Run(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("run")
	wait := fs.Bool("wait-config", false, "when the configuration is missing or invalid, say so once and wait for it to be fixed instead of exiting (the packaged service runs this)")
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	if *wait {
		if err := waitForConfig(ctx, e, configPoll); err != nil || ctx.Err() != nil {
			return err
		}
	}
	interactive := c.interactive
	if interactive == nil {
		interactive = service.Interactive
	}
	if !interactive() {
		return runAsService(ctx, e)
	}
	return runAgent(ctx, e, "")
}

// runAgent loads the configuration, builds the agent and runs it until ctx
// ends. serviceLog is the log file to use when log_file is "" (a Windows
// service); a configuration error is written there too.
func runAgent(ctx context.Context, e *env, serviceLog string) error {
	cfg, err := e.loadConfig()
	if err != nil {
		if serviceLog != "" {
			logStartFailure(serviceLog, err)
		}
		return err
	}
	if cfg.Agent.LogFile == "" {
		cfg.Agent.LogFile = serviceLog
	}
	w, closeLog, reopen, err := openLog(cfg, e.stderr)
	if err != nil {
		return err
	}
	defer closeLog()
	var events logs.EventSink
	if ev := service.EventLog(ctx); ev != nil {
		events = ev
	}
	log := agentLogger(cfg, w, events)
	for _, warning := range cfg.Warnings() {
		log.Warn(warning)
	}
	a, err := newAgent(cfg, log, nil)
	if err != nil {
		log.Error("cannot start", "err", err.Error())
		return err
	}
	stop := onHangup(func() { a.hangup(reopen) })
	defer stop()
	return a.run(ctx)
}

// hangup is SIGHUP: the log file is re-opened (after logrotate moved it)
// and card rosters are re-read, without stopping the agent.
func (a *agent) hangup(reopen func() error) {
	if reopen != nil {
		if err := reopen(); err != nil {
			a.log.Error("SIGHUP: could not re-open the log file; still writing to the old one", "err", err.Error())
		}
	}
	for _, r := range a.readers {
		r.ReloadRoster()
	}
	a.log.Info("SIGHUP: log file re-opened, rosters re-read before the next scan")
}

// configPoll is how often a waiting agent looks at its configuration file.
var configPoll = 2 * time.Second

// waitForConfig returns once the configuration file is valid. Until then it
// prints the problems, once for each version of the file, and the next step;
// it returns nil when ctx ends first. A freshly installed package enables the
// service before anyone has configured it: this keeps the unit waiting
// quietly instead of failing and restarting every few seconds.
func waitForConfig(ctx context.Context, e *env, every time.Duration) error {
	var seen []byte
	first := true
	for {
		data, readErr := os.ReadFile(e.configPath)
		if first || !bytes.Equal(data, seen) {
			seen = data
			_, err := e.loadConfig()
			if err == nil {
				if !first {
					fmt.Fprintf(e.stderr, "scanagent: %s is valid now; starting\n", e.configPath)
				}
				return nil
			}
			if readErr != nil && !os.IsNotExist(readErr) && !os.IsPermission(readErr) {
				return err
			}
			report(e.stderr, err)
			fmt.Fprintf(e.stderr, "scanagent: waiting for a valid configuration in %s: edit it (scanagent config check lists what is wrong); the agent starts by itself once it is valid\n", e.configPath)
			first = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}
