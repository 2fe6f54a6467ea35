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
	}
}

const usageText = `scanagent reads card and QR scans from serial devices and uploads them to the campus platform.

Usage: scanagent [--config PATH] COMMAND [ARGS]

Commands:
  run                          run the agent in the foreground until Ctrl-C / SIGTERM
  config check                 validate the configuration file; prints ok or every problem
  config example               print the annotated example configuration
  queue stats [--json]         counts of pending, dead, rejected and delivered scans
  queue list [--dead|--rejected] [--limit N] [--json]
                               records, oldest first (idCard shown as ***)
  queue show ID [--json]       one record in full (idCard shown as ***)
  queue retry ID|--all-dead    move dead records back to pending
  queue drop ID --yes          delete one record for good
  queue export [--dead|--rejected] [--format jsonl|csv] [--include-idcard] [--output FILE]
                               every record of a state to standard output, or to a new
                               file only you can read
  queue compact                shrink queue.db (only while the agent is stopped)
  queue salvage FILE           copy the readable records of a damaged queue file into the queue
  ports [--json]               list serial ports with USB VID:PID, serial number and the port = value to use
  monitor [--reader NAME] [--raw]
                               print a reader's frames and decoded fields; stores nothing
  encrypt --app-id ID VALUE|-  print VALUE (with -: the first line of standard input)
                               encrypted as the platform expects an idCard
  devserver [flags]            run a local emulation of the platform (see devserver --help)
  doctor                       check config, data dir, ports, platform DNS/TCP/TLS and the token
  demo                         run the whole system with a virtual scanner and a local platform
  version                      print version, commit, Go version and OS/arch
  service install [--config PATH]
                               install the system service (systemd, Windows) that runs
                               'run' with the absolute PATH; it starts at boot
  service start|stop|restart   control the installed service [--timeout 45s]
  service status               print running, stopped or not installed (exit 0 if running)
  service uninstall            stop and remove the service; configuration and queue stay

The configuration file is --config PATH (-c), else $SCANAGENT_CONFIG, else ` + "%s" + `.
`

// runMain runs one command line and returns the exit status.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr}
	rest, err := parseGlobal(e, args)
	if err == nil && len(rest) == 0 {
		err = usagef("no command given")
	}
	if err == nil {
		name := rest[0]
		if name == "help" || name == "-h" || name == "--help" {
			fmt.Fprintf(stdout, usageText, config.DefaultPath())
			return 0
		}
		cmd, ok := commands()[name]
		if !ok {
			err = usagef("unknown command %q (commands: %s)", name, commandNames())
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
