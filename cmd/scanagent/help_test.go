package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

var (
	synopsisFlag = regexp.MustCompile(`--([a-z][a-z0-9-]*)`)
	printedFlag  = regexp.MustCompile(`(?m)^  -([a-z][a-z0-9-]*)`)
)

// TestHelpEverywhere walks every command and subcommand with --help (and -h,
// and scanagent help …): usage, every real flag, named in the synopsis too,
// and an example; exit 0.
func TestHelpEverywhere(t *testing.T) {
	for _, h := range helpEntries {
		if h.name == "help" {
			continue
		}
		words := strings.Fields(h.name)
		for _, args := range [][]string{
			append(append([]string{}, words...), "--help"),
			append(append([]string{}, words...), "-h"),
			append([]string{"help"}, words...),
		} {
			code, out, errOut := runCLI(t, context.Background(), args...)
			if code != 0 || errOut != "" {
				t.Errorf("%q: exit %d, stderr %q; want 0 and nothing", args, code, errOut)
				continue
			}
			for _, want := range []string{"Usage: scanagent " + h.name, "Flags:", "Examples:\n  ", "--config"} {
				if !strings.Contains(out, want) {
					t.Errorf("%q: output lacks %q:\n%s", args, want, out)
				}
			}
			printed := map[string]bool{}
			for _, m := range printedFlag.FindAllStringSubmatch(out, -1) {
				printed[m[1]] = true
				if !strings.Contains(h.synopsis, "--"+m[1]) {
					t.Errorf("%s: flag -%s is not in the synopsis %q", h.name, m[1], h.synopsis)
				}
			}
			for _, m := range synopsisFlag.FindAllStringSubmatch(h.synopsis, -1) {
				if !printed[m[1]] {
					t.Errorf("%s: the synopsis names --%s, which is not a flag of the command:\n%s", h.name, m[1], out)
				}
			}
		}
	}
}

// TestHelpCoversEveryCommand: each command (or group) has help entries, and
// the groups answer --help with their subcommands.
func TestHelpCoversEveryCommand(t *testing.T) {
	for name := range commands() {
		if _, ok := lookupHelp(name); ok {
			continue
		}
		subs := subcommands(name)
		if len(subs) == 0 {
			t.Errorf("command %q has no help entry", name)
			continue
		}
		code, out, _ := runCLI(t, context.Background(), name, "--help")
		if code != 0 || !strings.Contains(out, "Usage: scanagent "+name+" COMMAND") || !strings.Contains(out, "Examples:") {
			t.Errorf("%s --help: exit %d\n%s", name, code, out)
		}
		for _, s := range subs {
			if !strings.Contains(out, s.name) {
				t.Errorf("%s --help does not list %q", name, s.name)
			}
		}
		code, _, errOut := runCLI(t, context.Background(), name, "frob")
		if code != 2 || !strings.Contains(errOut, "see scanagent "+name+" --help") {
			t.Errorf("%s frob: exit %d, %q", name, code, errOut)
		}
	}
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}, {"help", "--help"}} {
		code, out, _ := runCLI(t, context.Background(), args...)
		if code != 0 || !strings.Contains(out, "Usage: scanagent [--config PATH] COMMAND") {
			t.Errorf("%q: exit %d\n%s", args, code, out)
		}
		for _, h := range helpEntries {
			if !strings.Contains(out, h.name) {
				t.Errorf("%q does not list %q", args, h.name)
			}
		}
	}
	code, out, _ := runCLI(t, context.Background(), "--version")
	if code != 0 || !strings.HasPrefix(out, "scanagent ") || !strings.Contains(out, "os/arch:") {
		t.Errorf("--version: exit %d\n%s", code, out)
	}
}

// TestConfigCheckJSON: one document; each problem with its position, key,
// message and fix apart; exit 2 as the text form.
func TestConfigCheckJSON(t *testing.T) {
	path := writeFile(t, "config.toml", "[agent]\ndata_dir = \"C:\\temp\\new\"\n[platform]\nclient_id = \"c\"\nclient_secret = \"s\"\napp_id = \"01\"\n"+
		"[[reader]]\nname = \"r\"\nport = \"COM3\"\nterm_name = \"t\"\nterm_sn = \"sn\"\nbaud = 0\n")
	code, out, errOut := runCLI(t, context.Background(), "-c", path, "config", "check", "--json")
	if code != 2 || errOut != "" {
		t.Fatalf("exit %d, stderr %q; want 2 and nothing", code, errOut)
	}
	var doc struct {
		OK       bool           `json:"ok"`
		Problems []checkProblem `json:"problems"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if doc.OK || len(doc.Problems) < 2 {
		t.Fatalf("got %+v", doc)
	}
	for _, p := range doc.Problems {
		if p.File != path || p.Line == 0 || p.Key == "" || p.Message == "" || p.Fix == "" {
			t.Errorf("problem lacks a part: %+v", p)
		}
	}
	if p := doc.Problems[0]; p.Key != "[agent] data_dir" || !strings.Contains(p.Fix, "single quotes") {
		t.Errorf("first problem %+v", p)
	}

	ok := writeFile(t, "ok.toml", "[agent]\ndata_dir = 'd'\n[platform]\nclient_id = \"c\"\nclient_secret = \"s\"\napp_id = \"01\"\n"+
		"[[reader]]\nname = \"r\"\nport = \"usb:1a86:7523\"\nterm_name = \"t\"\nterm_sn = \"sn\"\n")
	code, out, _ = runCLI(t, context.Background(), "-c", ok, "config", "check", "--json")
	if code != 0 || !strings.Contains(out, `"ok": true`) || !strings.Contains(out, `"problems": []`) {
		t.Errorf("valid config: exit %d\n%s", code, out)
	}
}
