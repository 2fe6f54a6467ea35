package main

import (
	"context"
	"fmt"

	"scanagent/internal/config"
)

// configCmd is `config check` and `config example`.
type configCmd struct{}

func (c *configCmd) Run(_ context.Context, e *env, args []string) error {
	if err := groupArgs(e, "config", args); err != nil {
		return err
	}
	if _, ok := lookupHelp("config " + args[0]); !ok {
		return unknownSubcommand("config", args[0])
	}
	fs := newFlagSet("config " + args[0])
	if err := parseFlags(e, fs, args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "example":
		_, err := e.stdout.Write(config.Example)
		return err
	case "check":
		cfg, err := e.loadConfig()
		if err != nil {
			return err
		}
		for _, w := range cfg.Warnings() {
			fmt.Fprintf(e.stderr, "scanagent: warning: %s\n", w)
		}
		fmt.Fprintln(e.stdout, "ok")
		return nil
	}
	return unknownSubcommand("config", args[0])
}
