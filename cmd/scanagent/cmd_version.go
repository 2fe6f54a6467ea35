package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// Stamped at build time with -ldflags "-X main.version=... -X main.commit=... -X main.date=...".
var (
	version = "dev"
	commit  = ""
	date    = ""
)

type versionCmd struct{}

func (c *versionCmd) Run(_ context.Context, e *env, args []string) error {
	fs := newFlagSet("version")
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	cm, d := buildStamp()
	fmt.Fprintf(e.stdout, "scanagent %s\ncommit:  %s\nbuilt:   %s\ngo:      %s\nos/arch: %s/%s\n",
		version, cm, d, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

// buildStamp is the commit and build date: stamped with -ldflags, else
// from the Go toolchain's VCS information, else "unknown".
func buildStamp() (cm, d string) {
	cm, d = commit, date
	if bi, ok := debug.ReadBuildInfo(); ok && cm == "" {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				cm = s.Value
			case "vcs.time":
				d = s.Value
			}
		}
	}
	if cm == "" {
		cm = "unknown"
	}
	if d == "" {
		d = "unknown"
	}
	return cm, d
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("scanagent "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseFlags parses args; a flag error is a usage error and -h prints the
// flags to stdout.
func parseFlags(e *env, fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		writeCommandHelp(e.stdout, strings.TrimPrefix(fs.Name(), "scanagent "), fs)
		return exitError{0}
	}
	if err != nil {
		return usagef("%s: %v", fs.Name(), err)
	}
	return nil
}
