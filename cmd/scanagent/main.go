// Command scanagent reads card and QR scans from serial devices, keeps them in
// a durable offline queue and uploads them to the campus open platform. Run
// `scanagent help` for the commands. This package only parses flags and wires
// the components of internal/.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"scanagent/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// env is what every command gets: its output streams and the config path.
type env struct {
	stdout, stderr io.Writer
	stdin          io.Reader // nil = os.Stdin
	configPath     string
}

// command is one subcommand: its own flags, then Run.
type command interface {
	Run(ctx context.Context, e *env, args []string) error
}

// usageError is a mistake on the command line: exit status 2.
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// exitError carries an explicit exit status for a failure already reported.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func commands() map[string]command {
	return map[string]command{
		"run":       &runCmd{},
		"config":    &configCmd{},
		"queue":     &queueCmd{},
		"encrypt":   &encryptCmd{},
		"devserver": &devserverCmd{},
		"demo":      &demoCmd{},
		"doctor":    &doctorCmd{},
		"version":   &versionCmd{},
		"service":   &serviceCmd{},
		"ports":     &portsCmd{},
		"monitor":   &monitorCmd{},
		"alerts":    &alertsCmd{},
	}
}

// runMain runs one command line and returns the exit status.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr}
	rest, err := parseGlobal(e, args)
	if err == nil && len(rest) == 0 {
		err = usagef("no command given")
	}
	if err == nil {
		name := rest[0]
		switch {
		case name == "--version" || name == "-version":
			name, rest = "version", append([]string{"version"}, rest[1:]...)
		case isHelpArg(name) || (name == "help" && (len(rest) == 1 || isHelpArg(rest[1]))):
			writeTopHelp(stdout)
			return 0
		case name == "help":
			// scanagent help queue drop = scanagent queue drop --help
			name, rest = rest[1], append(rest[1:], "--help")
		}
		cmd, ok := commands()[name]
		if !ok {
			err = usagef("unknown command %q (commands: %s; see scanagent help)", name, commandNames())
		} else {
			err = cmd.Run(ctx, e, rest[1:])
		}
	}
	return report(stderr, err)
}

// report prints err as one line per problem and maps it to an exit status.
func report(stderr io.Writer, err error) int {
	var ex exitError
	var ue usageError
	var probs config.Problems
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ex):
		return ex.code
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "scanagent: %s\nRun 'scanagent help' for usage.\n", ue.msg)
		return 2
	case errors.As(err, &probs):
		for _, p := range probs {
			fmt.Fprintf(stderr, "scanagent: %s\n", p)
		}
		return 2
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(stderr, "scanagent: %s\n", line)
	}
	return 1
}

func commandNames() string {
	var names []string
	for n := range commands() {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// parseGlobal takes --config/-c from anywhere before the command, and also
// after it (scanagent queue stats -c x.toml), leaving the other arguments.
func parseGlobal(e *env, args []string) ([]string, error) {
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--config" || a == "-c" || a == "-config":
			if i+1 >= len(args) {
				return nil, usagef("%s needs a path", a)
			}
			e.configPath = args[i+1]
			i++
		case strings.HasPrefix(a, "--config="), strings.HasPrefix(a, "-config="), strings.HasPrefix(a, "-c="):
			e.configPath = a[strings.IndexByte(a, '=')+1:]
		default:
			rest = append(rest, a)
		}
	}
	if e.configPath == "" {
		e.configPath = config.DefaultPath()
	}
	return rest, nil
}

// loadConfig reads and validates the configuration file.
func (e *env) loadConfig() (*config.Config, error) {
	cfg, err := config.Load(e.configPath)
	if err != nil {
		return nil, err
	}
	if probs := cfg.Validate(); len(probs) > 0 {
		return nil, probs
	}
	return cfg, nil
}
