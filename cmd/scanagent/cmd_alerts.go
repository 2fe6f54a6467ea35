package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"scanagent/internal/admin"
	"scanagent/internal/alerts"
	"scanagent/internal/queue"
	"scanagent/internal/redact"
	"scanagent/internal/termtext"
	"scanagent/internal/upload"
)

// alertsCmd is `scanagent alerts test`: one test message to the people of
// [alerts] to. While the agent runs it is sent by the agent (through its
// socket, with its token); otherwise with the token stored in the queue, so
// the command never makes the running agent's token invalid.
type alertsCmd struct{}

func (c *alertsCmd) Run(ctx context.Context, e *env, args []string) error {
	if err := groupArgs(e, "alerts", args); err != nil {
		return err
	}
	sub, args := args[0], args[1:]
	if sub != "test" {
		return unknownSubcommand("alerts", sub)
	}
	fs := newFlagSet("alerts test")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	if !cfg.Alerts.Enabled() {
		return errors.New("alerts are off: [alerts] to is empty; list the xgh of the people to tell, e.g. to = [\"20121032\"]")
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var res []alerts.TestResult
	via := "the running agent"
	if api, aerr := dialAgent(ctx, cfg); aerr == nil {
		var out admin.AlertTest
		if err := api.call(ctx, "POST", "/api/alerts/test", struct{}{}, &out); err != nil {
			return err
		}
		res = out.Results
	} else if errors.Is(aerr, errAgentRefused) {
		return aerr
	} else {
		via = "this command (the agent is not running)"
		if res, err = testAlertOffline(ctx, e, cfg.Agent.DataDir); err != nil {
			return err
		}
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stdout, "test alert sent by %s:\n", via)
		for _, r := range res {
			if r.Sent {
				fmt.Fprintf(e.stdout, "✓ %s\n", termtext.Line(r.To))
			} else {
				fmt.Fprintf(e.stdout, "✗ %s: %s\n", termtext.Line(r.To), termtext.Line(r.Error))
			}
		}
		if len(res) > 0 {
			fmt.Fprintf(e.stdout, "text: %s\n", termtext.Line(res[0].Text))
		}
	}
	for _, r := range res {
		if !r.Sent {
			return exitError{1}
		}
	}
	return nil
}

// testAlertOffline sends the test message with the stopped agent's queue:
// its stored token is used (one is fetched only if none is valid, as the
// agent would), and saved for the agent.
func testAlertOffline(ctx context.Context, e *env, dataDir string) ([]alerts.TestResult, error) {
	cfg, err := e.loadConfig()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dataDir, queueFile)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no queue database at %s (start the agent once, or check data_dir): %w", path, err)
	}
	q, err := queue.Open(path, queue.Options{LockTimeout: offlineLockTimeout, MaxPending: cfg.Queue.MaxPending,
		KeepDelivered: cfg.Queue.KeepDelivered, NoNewJournal: true})
	if err != nil {
		return nil, err
	}
	defer q.Close()
	secret, err := cfg.ClientSecret()
	if err != nil {
		return nil, err
	}
	red := redact.New(secret)
	client, err := upload.NewHTTPClient(cfg.Platform.Timeout.Duration, cfg.Platform.CAFile, 1)
	if err != nil {
		return nil, err
	}
	loc, err := time.LoadLocation(cfg.Upload.Timezone)
	if err != nil {
		return nil, err
	}
	base := strings.TrimRight(cfg.Platform.BaseURL, "/")
	tokens := upload.NewTokenSource(client, base+cfg.Platform.TokenPath, cfg.Platform.ClientID, secret, q,
		upload.TokenOptions{RefreshBefore: cfg.Platform.TokenRefreshBefore.Duration, Redactor: red})
	return newAlerts(cfg, q, tokens, client, red, loc, newLogger(e.stderr, "error"), nil).Test(ctx)
}
