package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"scanagent/internal/config"
)

// Help: one table of every command and subcommand, from which the top-level
// help, each group's list (`queue --help`), each command's --help and the
// "unknown command" messages are all written, so they cannot disagree.

// helpEntry documents one command line.
type helpEntry struct {
	name     string   // "queue list": the words after scanagent
	synopsis string   // the arguments after the name; every --flag named here is a real flag
	summary  string   // one line, for the lists
	details  string   // more, for the command's own --help (optional)
	examples []string // whole command lines
}

var helpEntries = []helpEntry{
	{name: "run", synopsis: "[--wait-config]", summary: "run the agent in the foreground until Ctrl-C / SIGTERM (what the service runs)",
		details:  "Reads every [[reader]], stores each valid scan in data_dir/queue.db before acknowledging it, and uploads the queue to the platform.",
		examples: []string{"scanagent run -c /etc/scanagent/config.toml"}},
	{name: "config check", synopsis: "[--json]", summary: "validate the configuration file; prints ok or every problem (exit 2)",
		examples: []string{"sudo scanagent config check", "scanagent config check -c ./config.toml --json"}},
	{name: "config example", summary: "print the annotated example configuration",
		examples: []string{"scanagent config example > config.toml"}},
	{name: "queue stats", synopsis: "[--json]", summary: "counts of pending, dead, rejected and delivered scans",
		examples: []string{"scanagent queue stats", "scanagent queue stats --json"}},
	{name: "queue list", synopsis: "[--dead|--rejected] [--limit N] [--json]", summary: "records, oldest first (idCard masked)",
		examples: []string{"scanagent queue list --dead", "scanagent queue list --rejected --limit 20"}},
	{name: "queue show", synopsis: "ID [--json]", summary: "one record in full (idCard masked); rejected frames are r<N>",
		examples: []string{"scanagent queue show 42", "scanagent queue show r7 --json"}},
	{name: "queue retry", synopsis: "ID|--all-dead", summary: "move dead records back to pending",
		examples: []string{"scanagent queue retry 42", "scanagent queue retry --all-dead"}},
	{name: "queue drop", synopsis: "ID --yes", summary: "delete one record for good",
		examples: []string{"scanagent queue drop 42 --yes", "scanagent queue drop r7 --yes"}},
	{name: "queue export", synopsis: "[--dead|--rejected] [--format jsonl|csv] [--bom] [--include-idcard] [--output FILE]", summary: "every record of a state to standard output, or to a new file only you can read (--output)",
		details:  "CSV cells that start with = + - @ are prefixed with ' so a spreadsheet shows them as text; --bom (on by default on Windows) lets Excel read Chinese names.",
		examples: []string{"scanagent queue export --dead --format csv --output dead.csv", "scanagent queue export --rejected --format csv --bom=false > rejected.csv"}},
	{name: "queue compact", summary: "shrink queue.db (only while the agent is stopped)",
		details:  "On Linux the running agent does this by itself once a large backlog has drained (at least 64 MB free, at most 16 MB in use); run it by hand on Windows, or to shrink a file with more in use.",
		examples: []string{"sudo systemctl stop scanagent && sudo scanagent queue compact && sudo systemctl start scanagent"}},
	{name: "queue salvage", synopsis: "FILE", summary: "copy the readable records of a damaged queue file into the queue",
		examples: []string{"sudo scanagent queue salvage /var/lib/scanagent/queue.db.corrupt-20260102T030405Z"}},
	{name: "ports", synopsis: "[--json]", summary: "list serial ports with USB VID:PID, serial number and the port = value to use",
		examples: []string{"scanagent ports"}},
	{name: "monitor", synopsis: "[--reader NAME] [--raw] [--live]", summary: "print a reader's frames and decoded fields",
		details: "Without --live it opens the reader's port itself and stores nothing, so the agent must not hold the port (stop the service first).\n" +
			"With --live it watches the running agent's readers through its socket (data_dir/admin.sock): the gate stays in service, scans are stored and acknowledged as usual.",
		examples: []string{"scanagent monitor --reader gate-1", "sudo scanagent monitor --live", "scanagent monitor --raw"}},
	{name: "encrypt", synopsis: "--app-id ID [--mode ecb|cbc] [--encoding base64|hex] [--iv IV] VALUE|-", summary: "print VALUE (with -: the first line of standard input) encrypted as the platform expects an idCard",
		details:  "Use - and type or pipe the ID number, so it does not stay in the shell's history or the process list.",
		examples: []string{"scanagent encrypt --app-id 01 -", "scanagent encrypt --app-id 01 33010219900101123X"}},
	{name: "devserver", synopsis: "[--listen ADDR] [--app-id ID] [--client-id ID] [--client-secret S] [--token-ttl D] [--fail P] [--latency D] [--log FILE] [--date-shift D]",
		summary:  "run a local emulation of the platform that checks every request strictly",
		examples: []string{"scanagent devserver --listen 127.0.0.1:8088 --fail 0.2"}},
	{name: "doctor", synopsis: "[--json]", summary: "check config, data dir, ports, platform DNS/TCP/TLS and the token; exit 0 only if all pass",
		examples: []string{"sudo scanagent doctor", "sudo scanagent doctor --json"}},
	{name: "demo", synopsis: "[--scans N] [--interval D] [--outage D] [--v]", summary: "run the whole system with a virtual scanner and a local platform",
		examples: []string{"scanagent demo", "scanagent demo --scans 500 --outage 5s"}},
	{name: "alerts test", synopsis: "[--json]", summary: "send one test alert to the people of [alerts] to, through the platform's msgsend",
		details:  "While the agent runs, the agent sends it with its own access token; otherwise the token stored in data_dir is used. Exit 1 if any person's message was not accepted.",
		examples: []string{"sudo scanagent alerts test", "scanagent alerts test -c ./config.toml --json"}},
	{name: "version", summary: "print version, commit, Go version and OS/arch (also scanagent --version)",
		examples: []string{"scanagent version"}},
	{name: "service install", synopsis: "[--timeout D]", summary: "install the system service (systemd, Windows) running 'run' with the absolute config path; it starts at boot",
		examples: []string{"sudo scanagent service install -c /etc/scanagent/config.toml"}},
	{name: "service uninstall", synopsis: "[--timeout D]", summary: "stop and remove the service; configuration and queue stay",
		examples: []string{"sudo scanagent service uninstall"}},
	{name: "service start", synopsis: "[--timeout D]", summary: "start the installed service",
		examples: []string{"sudo scanagent service start"}},
	{name: "service stop", synopsis: "[--timeout D]", summary: "stop the installed service",
		examples: []string{"sudo scanagent service stop --timeout 1m"}},
	{name: "service restart", synopsis: "[--timeout D]", summary: "restart the installed service",
		examples: []string{"sudo scanagent service restart"}},
	{name: "service status", synopsis: "[--timeout D]", summary: "print running, stopped or not installed (exit 0 if running)",
		examples: []string{"scanagent service status"}},
	{name: "help", synopsis: "[COMMAND [SUBCOMMAND]]", summary: "this help, or a command's (same as COMMAND --help)",
		examples: []string{"scanagent help queue", "scanagent help queue drop"}},
}

// lookupHelp returns the entry for name ("queue list").
func lookupHelp(name string) (helpEntry, bool) {
	for _, h := range helpEntries {
		if h.name == name {
			return h, true
		}
	}
	return helpEntry{}, false
}

// subcommands returns the entries under a group ("queue").
func subcommands(group string) []helpEntry {
	var out []helpEntry
	for _, h := range helpEntries {
		if strings.HasPrefix(h.name, group+" ") {
			out = append(out, h)
		}
	}
	return out
}

// subcommandNames is "stats, list, … or salvage" for a group.
func subcommandNames(group string) string {
	var names []string
	for _, h := range subcommands(group) {
		names = append(names, strings.TrimPrefix(h.name, group+" "))
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

func isHelpArg(a string) bool { return a == "-h" || a == "--help" || a == "-help" }

const globalFlagsHelp = "Global flag: -c, --config PATH   the configuration file (default $SCANAGENT_CONFIG, else %s)\n"

// writeTopHelp is `scanagent help`.
func writeTopHelp(w io.Writer) {
	fmt.Fprintf(w, "scanagent reads card and QR scans from serial devices and uploads them to the campus platform.\n\n")
	fmt.Fprintf(w, "Usage: scanagent [--config PATH] COMMAND [ARGS]\n\nCommands:\n")
	for _, h := range helpEntries {
		line := strings.TrimSpace(h.name + " " + h.synopsis)
		if len(line) <= 28 {
			fmt.Fprintf(w, "  %-28s %s\n", line, h.summary)
		} else {
			fmt.Fprintf(w, "  %s\n  %-28s %s\n", line, "", h.summary)
		}
	}
	fmt.Fprintf(w, "\n"+globalFlagsHelp, config.DefaultPath())
	fmt.Fprintf(w, "Run 'scanagent COMMAND --help' for a command's flags and examples.\n")
}

// writeGroupHelp is `scanagent queue --help`.
func writeGroupHelp(w io.Writer, group string) {
	fmt.Fprintf(w, "Usage: scanagent %s COMMAND [ARGS]\n\nCommands:\n", group)
	for _, h := range subcommands(group) {
		fmt.Fprintf(w, "  %s\n      %s\n", strings.TrimSpace(h.name+" "+h.synopsis), h.summary)
	}
	fmt.Fprintf(w, "\nExamples:\n")
	for _, h := range subcommands(group) {
		fmt.Fprintf(w, "  %s\n", h.examples[0])
	}
	fmt.Fprintf(w, "\n"+globalFlagsHelp, config.DefaultPath())
	fmt.Fprintf(w, "Run 'scanagent %s COMMAND --help' for a command's flags.\n", group)
}

// writeCommandHelp is `scanagent queue list --help`: usage, what it does,
// every flag of fs, and examples.
func writeCommandHelp(w io.Writer, name string, fs *flag.FlagSet) {
	h, ok := lookupHelp(name)
	if !ok { // every command has an entry (TestHelpEverywhere); keep going anyway
		h = helpEntry{name: name}
	}
	fmt.Fprintf(w, "Usage: scanagent %s\n", strings.TrimSpace(h.name+" "+h.synopsis))
	if h.summary != "" {
		fmt.Fprintf(w, "\n%s\n", capitalize(h.summary)+".")
	}
	if h.details != "" {
		fmt.Fprintf(w, "%s\n", h.details)
	}
	fmt.Fprintf(w, "\nFlags:\n")
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		fmt.Fprintf(w, "  (none besides --config)\n")
	} else {
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
	fmt.Fprintf(w, "\n"+globalFlagsHelp, config.DefaultPath())
	if len(h.examples) > 0 {
		fmt.Fprintf(w, "\nExamples:\n")
		for _, ex := range h.examples {
			fmt.Fprintf(w, "  %s\n", ex)
		}
	}
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// groupArgs handles a command group's first argument: none is a usage error
// listing the subcommands, -h/--help prints the group's help.
func groupArgs(e *env, group string, args []string) error {
	if len(args) == 0 {
		return usagef("usage: scanagent %s COMMAND (%s); see scanagent %s --help", group, subcommandNames(group), group)
	}
	if isHelpArg(args[0]) {
		writeGroupHelp(e.stdout, group)
		return exitError{0}
	}
	return nil
}

// unknownSubcommand is the usage error for `scanagent queue frob`.
func unknownSubcommand(group, sub string) error {
	return usagef("unknown %s command %q (use %s; see scanagent %s --help)", group, sub, subcommandNames(group), group)
}
