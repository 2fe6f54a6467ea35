package main

import (
	"context"
	"encoding/json"
	"errors"
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
	var asJSON *bool
	if args[0] == "check" {
		asJSON = fs.Bool("json", false, "print one JSON document: ok, each problem with file, line, column, key, message and fix, and the warnings")
	}
	if err := parseFlags(e, fs, args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "example":
		_, err := e.stdout.Write(config.Example)
		return err
	case "check":
		cfg, err := e.loadConfig()
		if *asJSON {
			return checkJSON(e, cfg, err)
		}
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

// checkProblem is one problem in `config check --json`.
type checkProblem struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Col     int    `json:"col,omitempty"`
	Key     string `json:"key,omitempty"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

// checkJSON prints the result of loading the configuration as one JSON
// document, with the exit status of the text form (2 for problems, 1 when
// the file cannot be read).
func checkJSON(e *env, cfg *config.Config, err error) error {
	doc := struct {
		OK       bool           `json:"ok"`
		File     string         `json:"file"`
		Problems []checkProblem `json:"problems"`
		Warnings []string       `json:"warnings"`
	}{OK: err == nil, File: e.configPath, Problems: []checkProblem{}, Warnings: []string{}}
	code := 0
	var probs config.Problems
	switch {
	case errors.As(err, &probs):
		code = 2
		for _, p := range probs {
			msg, fix := p.MessageAndFix()
			doc.Problems = append(doc.Problems, checkProblem{File: p.Path, Line: p.Line, Col: p.Col, Key: p.Key, Message: msg, Fix: fix})
		}
	case err != nil:
		code = 1
		doc.Problems = append(doc.Problems, checkProblem{File: e.configPath, Message: err.Error()})
	default:
		doc.Warnings = append(doc.Warnings, cfg.Warnings()...)
	}
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	if code != 0 {
		return exitError{code}
	}
	return nil
}
