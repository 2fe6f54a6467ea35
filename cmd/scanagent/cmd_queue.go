package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"scanagent/internal/queue"
)

// queueCmd inspects the offline queue.
type queueCmd struct{}

func (c *queueCmd) Run(_ context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usagef("usage: scanagent queue stats [--json]")
	}
	switch args[0] {
	case "stats":
		return c.stats(e, args[1:])
	}
	return usagef("unknown queue command %q (use stats)", args[0])
}

func (c *queueCmd) stats(e *env, args []string) error {
	fs := newFlagSet("queue stats")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	q, err := openQueueOffline(filepath.Join(cfg.Agent.DataDir, queueFile))
	if err != nil {
		return err
	}
	defer q.Close()
	s, err := q.Stats()
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	oldest := "none"
	if s.OldestPending != nil {
		oldest = s.OldestPending.Local().Format(time.RFC3339)
	}
	fmt.Fprintf(e.stdout, "pending:        %d\ndead:           %d\nrejected:       %d\ndelivered:      %d\noldest_pending: %s\n",
		s.Pending, s.Dead, s.Rejected, s.Delivered, oldest)
	return nil
}

// openQueueOffline opens the queue read-only for inspection, failing within
// a second when the running agent holds it.
func openQueueOffline(path string) (*queue.Queue, error) {
	q, err := queue.Open(path, queue.Options{ReadOnly: true, LockTimeout: time.Second})
	if errors.Is(err, queue.ErrLocked) {
		return nil, fmt.Errorf("%s is locked by the running agent; stop it first (scanagent service stop), or read /healthz on admin_listen for the counts", path)
	}
	return q, err
}
