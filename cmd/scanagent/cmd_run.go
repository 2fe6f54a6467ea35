package main

import (
	"context"

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
	if err := parseFlags(e, fs, args); err != nil {
		return err
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
	w, closeLog, err := openLog(cfg, e.stderr)
	if err != nil {
		return err
	}
	defer closeLog()
	log := newLogger(w, cfg.Agent.LogLevel)
	for _, warning := range cfg.Warnings() {
		log.Warn(warning)
	}
	a, err := newAgent(cfg, log, nil)
	if err != nil {
		log.Error("cannot start", "err", err.Error())
		return err
	}
	return a.run(ctx)
}
