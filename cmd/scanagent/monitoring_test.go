package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"scanagent/internal/upload"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"go.yaml.in/yaml/v3"
)

// notExportedYet would list metrics the monitoring pack uses that the agent
// does not export yet; it is empty: every one is exported.
var notExportedYet = []string{}

// stateMatcher finds the values of scanagent_platform_state's state label.
var stateMatcher = regexp.MustCompile(`scanagent_platform_state\{state=~?"([^"]+)"\}`)

// metricName finds the metric names in a PromQL expression: ours, and up.
var metricName = regexp.MustCompile(`\b(scanagent_[a-z0-9_]+|up)\b`)

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// TestMonitoringPack checks packaging/monitoring: the rules file parses as
// Prometheus rules (YAML, every rule named, with an expression, a valid
// `for` and a summary naming the terminal), the dashboard is JSON, and every
// metric either uses is exported by a running agent.
func TestMonitoringPack(t *testing.T) {
	dir := filepath.Join("..", "..", "packaging", "monitoring")
	used := map[string][]string{} // metric → where

	raw, err := os.ReadFile(filepath.Join(dir, "scanagent-rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("scanagent-rules.yml: %v", err)
	}
	alerts := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || strings.TrimSpace(r.Expr) == "" || alerts[r.Alert] {
				t.Errorf("rule %q: needs a unique alert name and an expr", r.Alert)
			}
			alerts[r.Alert] = true
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("rule %s: for %q: %v", r.Alert, r.For, err)
				}
			}
			if !strings.Contains(r.Annotations["summary"], "term_sn") || r.Labels["severity"] == "" {
				t.Errorf("rule %s: the summary must name the terminal (term_sn) and a severity be set", r.Alert)
			}
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") || strings.Count(r.Expr, "{") != strings.Count(r.Expr, "}") {
				t.Errorf("rule %s: unbalanced expression %q", r.Alert, r.Expr)
			}
			for _, m := range metricName.FindAllString(r.Expr, -1) {
				used[m] = append(used[m], "rule "+r.Alert)
			}
			// A platform state named in a rule is one the agent reports.
			for _, m := range stateMatcher.FindAllStringSubmatch(r.Expr, -1) {
				for _, st := range strings.Split(m[1], "|") {
					if !slices.Contains(upload.States, upload.State(st)) {
						t.Errorf("rule %s: state %q is not a platform state (%v)", r.Alert, st, upload.States)
					}
				}
			}
		}
	}
	for _, want := range []string{"ScanagentDown", "ScanagentReaderDown", "ScanagentBacklogOld", "ScanagentDeadRecords",
		"ScanagentPlatformUnreachable", "ScanagentPlatformHeld", "ScanagentClockSkew"} {
		if !alerts[want] {
			t.Errorf("no rule %s", want)
		}
	}

	raw, err = os.ReadFile(filepath.Join(dir, "scanagent-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil || len(dash.Panels) == 0 {
		t.Fatalf("scanagent-dashboard.json: %v (%d panels)", err, len(dash.Panels))
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			if !strings.Contains(tg.Expr, `term_sn=~"$term_sn"`) {
				t.Errorf("panel %q: %q is not filtered by the terminal variable", p.Title, tg.Expr)
			}
			for _, m := range metricName.FindAllString(tg.Expr, -1) {
				used[m] = append(used[m], "panel "+p.Title)
			}
		}
	}

	exported := scrapeAgent(t)
	exported["up"] = true // Prometheus's own, per target
	for m, where := range used {
		if slices.Contains(notExportedYet, m) {
			continue // see notExportedYet
		}
		if !exported[m] {
			t.Errorf("%s (used by %s) is not exported by a running agent", m, strings.Join(where, ", "))
		}
	}
}

// scrapeAgent runs an agent with one reader and returns the metric families
// its /metrics exports.
func scrapeAgent(t *testing.T) map[string]bool {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer master.Close()
	defer slave.Close()
	addr := freeAddr(t)
	cfgPath := queueConfig(t, filepath.Join(t.TempDir(), "data"), addr, slave.Name(), "")
	startAgent(t, cfgPath)
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			out[strings.Fields(rest)[0]] = true
		}
	}
	return out
}
