package main

import (
	"context"
)

// runCmd runs the agent in the foreground until the context ends (SIGINT or
// SIGTERM); the service runs the same.
type runCmd struct{}

func (c *runCmd) Run(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("run")
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	cfg, err := e.loadConfig()
	if err != nil {
		return err
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
