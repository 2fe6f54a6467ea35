package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"scanagent/internal/config"
	"scanagent/internal/queue"
	"scanagent/internal/reader"
	"scanagent/internal/termtext"
)

// monitorCmd opens one reader's port as the agent would and prints what it
// reads, for choosing framing and decoder. It stores and acknowledges
// nothing.
type monitorCmd struct{}

func (c *monitorCmd) Run(ctx context.Context, e *env, args []string) error {
	flags := newFlagSet("monitor")
	name := flags.String("reader", "", "the [[reader]] name (needed when there are several)")
	raw := flags.Bool("raw", false, "print each frame as hex bytes")
	live := flags.Bool("live", false, "watch the running agent's readers through its socket, without stopping it (with --reader: that one only)")
	if err := parseFlags(e, flags, args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return usagef("usage: scanagent monitor [--reader NAME] [--raw] [--live]")
	}
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	if *live {
		return monitorLive(ctx, e, cfg, *name, *raw)
	}
	rc, err := pickReader(cfg, *name)
	if err != nil {
		return err
	}
	if who := agentRunning(cfg); who != "" {
		return fmt.Errorf("the agent is running (%s) and holds the serial ports: stop it first (scanagent service stop), run monitor, then start it again", who)
	}

	log := newLogger(e.stderr, "info")
	fmt.Fprintf(e.stdout, "monitor: reader %s, port %s, %d baud, framing %s, decoder %s; nothing is stored or acknowledged; Ctrl-C to stop\n",
		rc.Name, rc.Port, rc.Baud, rc.Framing, rc.Decoder)
	err = reader.Monitor(ctx, rc, reader.MonitorOptions{
		Logger:       log,
		DedupeWindow: cfg.Queue.DedupeWindow.Duration,
		Connected: func(path string) {
			fmt.Fprintf(e.stdout, "port %s open; waiting for scans\n", path)
		},
	}, func(ev reader.Event) { printEvent(e, ev, *raw) })
	if err == nil {
		return nil
	}
	f := reader.DiagnosePort(rc.Port, err)
	return fmt.Errorf("%w\n%s\nfix: %s", err, f.Cause, f.Fix)
}

// pickReader finds the [[reader]] named name, or the only one.
func pickReader(cfg *config.Config, name string) (config.Reader, error) {
	var names []string
	for _, r := range cfg.Readers {
		if name != "" && r.Name == name {
			return r, nil
		}
		names = append(names, strconv.Quote(r.Name))
	}
	switch {
	case name != "":
		return config.Reader{}, usagef("no [[reader]] named %q in %s (readers: %s)", name, cfg.Path, strings.Join(names, ", "))
	case len(cfg.Readers) == 1:
		return cfg.Readers[0], nil
	}
	return config.Reader{}, usagef("%s has %d readers: choose one with --reader NAME (%s)", cfg.Path, len(cfg.Readers), strings.Join(names, ", "))
}

// printEvent writes one frame: its time and content, then the decoded
// fields (the ID number masked) or why the agent would reject it. What came
// from the scanner is quoted (strconv.Quote escapes control characters) or
// escaped (termtext), never sent to the terminal as it is.
func printEvent(e *env, ev reader.Event, raw bool) {
	at := ev.Time.Local().Format("15:04:05.000")
	if ev.Note != "" {
		fmt.Fprintf(e.stdout, "%s  note: %s\n", at, termtext.Line(ev.Note))
		return
	}
	content := strconv.Quote(string(ev.Raw))
	if raw {
		content = fmt.Sprintf("% x", ev.Raw)
	}
	fmt.Fprintf(e.stdout, "%s  frame (%d bytes): %s\n", at, len(ev.Raw), content)
	if ev.Reason != "" {
		fmt.Fprintf(e.stdout, "              rejected: %s (the agent would store it as rejected and write ack_fail)\n", termtext.Line(ev.Reason))
		return
	}
	f := ev.Fields
	var b strings.Builder
	for _, kv := range [][2]string{{"xgh", f.Xgh}, {"name", f.Name}, {"idCard", f.IDCard}, {"userType", f.UserType}, {"card", f.Card}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, " %s=%s", kv[0], strconv.Quote(kv[1]))
		}
	}
	note := ""
	if ev.Repeat {
		note = "  (repeat within dedupe_window: the agent would write ack_ok and not store it again)"
	}
	fmt.Fprintf(e.stdout, "              ok:%s%s\n", b.String(), note)
}

// agentRunning reports how it knows that an agent with this configuration
// is running, or "". The serial port itself is not enough: go.bug.st/serial
// sets TIOCEXCL on Unix, but root may open such a port anyway (and read half
// the agent's bytes), so the agent is looked for first: its socket or admin
// /healthz, else the lock on its queue file.
func agentRunning(cfg *config.Config) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if api, err := dialAgent(ctx, cfg); err == nil {
		api.Close()
		return "it answers on " + api.sock
	}
	if addr := cfg.Agent.AdminListen; addr != "" {
		if host, port, err := net.SplitHostPort(addr); err == nil {
			if host == "" || host == "0.0.0.0" || host == "::" {
				host = "127.0.0.1"
			}
			url := "http://" + net.JoinHostPort(host, port) + "/healthz"
			client := &http.Client{Timeout: time.Second}
			if resp, err := client.Get(url); err == nil {
				resp.Body.Close()
				return "it answers on " + url
			}
		}
	}
	path := filepath.Join(cfg.Agent.DataDir, queueFile)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	q, err := queue.Open(path, queue.Options{ReadOnly: true, LockTimeout: 300 * time.Millisecond})
	if errors.Is(err, queue.ErrLocked) {
		return path + " is locked"
	}
	if err == nil {
		q.Close()
	}
	return ""
}

// monitorLive prints the running agent's frames and verdicts as its readers
// see them (reader.Tap through the socket), until Ctrl-C or the agent stops.
// The agent stores and acknowledges as always; this only watches.
func monitorLive(ctx context.Context, e *env, cfg *config.Config, name string, raw bool) error {
	if name != "" {
		if _, err := pickReader(cfg, name); err != nil {
			return err
		}
	}
	api, err := dialAgent(ctx, cfg)
	if err != nil {
		return fmt.Errorf("monitor --live watches a running agent, and none answers: %w\n"+
			"start it (scanagent service start), or run monitor without --live to open the port yourself", err)
	}
	defer api.Close()
	body, err := api.stream(ctx, "/api/tap?reader="+url.QueryEscape(name))
	if err != nil {
		return err
	}
	defer body.Close()
	which := "every reader"
	if name != "" {
		which = "reader " + name
	}
	fmt.Fprintf(e.stdout, "monitor --live: %s of the running agent (%s); it stores and acknowledges as usual; Ctrl-C to stop\n", which, api.sock)
	dec := json.NewDecoder(body)
	for {
		var ev reader.TapEvent
		if err := dec.Decode(&ev); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("the agent closed the stream (stopped or restarted?): %v", err)
		}
		if ev.Dropped > 0 {
			fmt.Fprintf(e.stdout, "(%d event(s) not shown: this terminal read too slowly)\n", ev.Dropped)
		}
		if name == "" && len(cfg.Readers) > 1 {
			fmt.Fprintf(e.stdout, "[%s] ", termtext.Line(ev.Reader))
		}
		printEvent(e, ev.Event, raw)
	}
}
