package main

import (
	"context"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"scanagent/internal/admin"
	"scanagent/internal/queue"
	"scanagent/internal/termtext"
)

// queueCmd inspects and repairs the offline queue (docs/operate.md). While the agent
// runs, the commands go through its admin API (queue_client.go); while it is
// stopped they open queue.db directly. compact works offline only; salvage
// both ways (the running agent salvages files in data_dir).
type queueCmd struct{}

func (c *queueCmd) Run(ctx context.Context, e *env, args []string) error {
	if err := groupArgs(e, "queue", args); err != nil {
		return err
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "stats":
		return c.stats(ctx, e, args)
	case "list":
		return c.list(ctx, e, args)
	case "show":
		return c.show(ctx, e, args)
	case "retry":
		return c.retry(ctx, e, args)
	case "drop":
		return c.drop(ctx, e, args)
	case "export":
		return c.export(ctx, e, args)
	case "compact":
		return c.compact(e, args)
	case "salvage":
		return c.salvage(ctx, e, args)
	}
	return unknownSubcommand("queue", sub)
}

// parseArgs parses flags placed before, between or after the positional
// arguments (`queue drop 12 --yes`), which flag.Parse alone does not.
func parseArgs(e *env, fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(e, fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func stateFlags(fs *flag.FlagSet) func() (queue.State, error) {
	dead := fs.Bool("dead", false, "dead records (refused by the platform)")
	rejected := fs.Bool("rejected", false, "rejected frames")
	return func() (queue.State, error) {
		switch {
		case *dead && *rejected:
			return "", usagef("--dead and --rejected exclude each other")
		case *dead:
			return queue.StateDead, nil
		case *rejected:
			return queue.StateRejected, nil
		}
		return queue.StatePending, nil
	}
}

// parseOneID parses the flags and exactly one ID: 12 for a scan record,
// r12 for a rejected frame.
func parseOneID(e *env, fs *flag.FlagSet, args []string, usage string) (queue.Ref, error) {
	pos, err := parseArgs(e, fs, args)
	if err != nil {
		return queue.Ref{}, err
	}
	if len(pos) != 1 {
		return queue.Ref{}, usagef("%s", usage)
	}
	return parseID(pos[0])
}

func parseID(s string) (queue.Ref, error) {
	ref, err := queue.ParseRef(s)
	if err != nil {
		return queue.Ref{}, usagef("%v", err)
	}
	return ref, nil
}

// printJSON writes v as indented JSON, with every control character
// escaped (termtext.JSON adds DEL and C1 to what encoding/json escapes).
func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(termtext.JSON(b), '\n'))
	return err
}

// localTime formats t for people: local time, RFC 3339; "-" when unset.
func localTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.RFC3339)
}

func (c *queueCmd) stats(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("queue stats")
	asJSON := fs.Bool("json", false, "print JSON")
	if pos, err := parseArgs(e, fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usagef("queue stats takes no arguments")
	}
	st, err := openStore(ctx, e, false)
	if err != nil {
		return err
	}
	defer st.Close()
	s, err := st.Stats(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, s)
	}
	oldest := "none"
	if s.OldestPending != nil {
		oldest = localTime(*s.OldestPending)
	}
	fmt.Fprintf(e.stdout, "pending:        %d\ndead:           %d\nrejected:       %d\ndelivered:      %d\noldest_pending: %s\n",
		s.Pending, s.Dead, s.Rejected, s.Delivered, oldest)
	if s.Journaled > 0 {
		fmt.Fprintf(e.stdout, "journaled:      %d (acknowledged scans not yet in the pending count; the agent adds them when it starts)\n", s.Journaled)
	}
	return nil
}

func (c *queueCmd) list(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("queue list")
	state := stateFlags(fs)
	limit := fs.Int("limit", 100, "at most N records, oldest first (0 = all)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseArgs(e, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("queue list takes no arguments")
	}
	if *limit < 0 {
		return usagef("--limit must be 0 (all) or more")
	}
	s, err := state()
	if err != nil {
		return err
	}
	st, err := openStore(ctx, e, false)
	if err != nil {
		return err
	}
	defer st.Close()
	var items []queue.Item
	more := false
	err = eachItem(ctx, st, s, false, func(it queue.Item) bool {
		if *limit > 0 && len(items) == *limit {
			more = true
			return false
		}
		items = append(items, it.Masked())
		return true
	})
	if err != nil {
		return err
	}
	if *asJSON {
		if items == nil {
			items = []queue.Item{}
		}
		return printJSON(e.stdout, items)
	}
	tw := termtext.NewTable(e.stdout) // escapes control characters, aligns Chinese names
	switch s {
	case queue.StateRejected:
		fmt.Fprintln(tw, "ID\tTIME\tREADER\tREASON\tRAW")
		for _, it := range items {
			r := it.Rejection
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, localTime(r.Time), r.Reader, oneLine(r.Reason), clip(strconv.Quote(string(r.Raw)), 40))
		}
	default:
		last := "TRIES\tLAST ERROR"
		if s == queue.StateDead {
			last = "DEAD SINCE\tREASON"
		}
		fmt.Fprintf(tw, "ID\tSCANNED\tREADER\tXGH\tNAME\tUSER TYPE\tID CARD\t%s\n", last)
		for _, it := range items {
			r := it.Record
			// The cause is the last column and printed whole: it is what a
			// technician acts on.
			tail := fmt.Sprintf("%d\t%s", r.Tries, oneLine(orDash(r.LastError)))
			if s == queue.StateDead {
				tail = fmt.Sprintf("%s\t%s", localTime(r.DeadAt), oneLine(r.DeadReason))
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, localTime(r.ScanTime), termtext.Line(r.Reader), termtext.Line(r.Xgh),
				termtext.Line(r.Name), termtext.Line(orDash(r.UserType)), termtext.Line(orDash(r.IDCard)), tail)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(items) == 0 {
		fmt.Fprintf(e.stdout, "no %s records\n", s)
	}
	if more {
		fmt.Fprintf(e.stderr, "scanagent: showing the oldest %d %s records; raise --limit (0 = all) or use queue export\n", len(items), s)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine is s for a table cell: runs of white space as one space, control
// characters escaped.
func oneLine(s string) string { return termtext.Line(strings.Join(strings.Fields(s), " ")) }

// clip shortens s to n columns of the terminal.
func clip(s string, n int) string { return termtext.Clip(s, n) }

// eachItem calls fn for the records of one state, oldest first, a page at a
// time, until fn returns false.
func eachItem(ctx context.Context, st queueStore, s queue.State, withIDCard bool, fn func(queue.Item) bool) error {
	var after uint64
	for {
		page, err := st.List(ctx, s, after, 1000, withIDCard)
		if err != nil {
			return err
		}
		for _, it := range page.Items {
			if !fn(it) {
				return nil
			}
		}
		if page.NextAfter == 0 {
			return nil
		}
		after = page.NextAfter
	}
}

func (c *queueCmd) show(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("queue show")
	asJSON := fs.Bool("json", false, "print JSON")
	id, err := parseOneID(e, fs, args, "usage: scanagent queue show ID [--json] (ID: 12 for a scan record, r12 for a rejected frame)")
	if err != nil {
		return err
	}
	st, err := openStore(ctx, e, false)
	if err != nil {
		return err
	}
	defer st.Close()
	it, err := st.Get(ctx, id)
	if err != nil {
		return err
	}
	it = it.Masked()
	if *asJSON {
		return printJSON(e.stdout, it)
	}
	tw := termtext.NewTable(e.stdout) // escapes control characters, aligns Chinese names
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, termtext.Line(v)) }
	row("state", string(it.State))
	if r := it.Rejection; r != nil {
		row("id", r.ID.String())
		row("reader", r.Reader)
		row("time", localTime(r.Time))
		row("reason", r.Reason)
		row("raw", strconv.Quote(string(r.Raw)))
		row("raw (hex)", hex.EncodeToString(r.Raw))
	} else if r := it.Record; r != nil {
		row("id", strconv.FormatUint(r.ID, 10))
		row("reader", r.Reader)
		row("termName", r.TermName)
		row("termSn", r.TermSn)
		row("xgh", r.Xgh)
		row("name", r.Name)
		row("idCard", orDash(r.IDCard))
		row("userType", orDash(r.UserType))
		row("scanTime", localTime(r.ScanTime)+" (local clock)")
		if r.SentScanTime.IsZero() {
			row("sentScanTime", "- (sent as stamped)")
		} else {
			row("sentScanTime", localTime(r.SentScanTime)+" (corrected: the clock was wrong when the scan was stamped)")
		}
		row("enqueuedAt", localTime(r.EnqueuedAt))
		row("tries", strconv.Itoa(r.Tries))
		row("attempts", fmt.Sprintf("%d (platform errors counted against max_error_attempts)", r.Attempts))
		row("lastError", orDash(r.LastError))
		row("nextAttempt", localTime(r.NextAttempt))
		if it.State == queue.StateDead {
			row("deadReason", r.DeadReason)
			row("deadAt", localTime(r.DeadAt))
		}
	}
	return tw.Flush()
}

func (c *queueCmd) retry(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("queue retry")
	all := fs.Bool("all-dead", false, "retry every dead record")
	pos, err := parseArgs(e, fs, args)
	if err != nil {
		return err
	}
	if *all == (len(pos) == 1) || len(pos) > 1 {
		return usagef("usage: scanagent queue retry ID|--all-dead")
	}
	var id queue.Ref
	if !*all {
		if id, err = parseID(pos[0]); err != nil {
			return err
		}
	}
	st, err := openStore(ctx, e, true)
	if err != nil {
		return err
	}
	defer st.Close()
	var res queue.Retried
	if *all {
		res, err = st.RetryDead(ctx)
	} else {
		res.Retried, err = st.Retry(ctx, id)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%d dead record(s) moved back to pending, at the end of the queue with new IDs\n", res.Retried)
	if res.Left > 0 {
		fmt.Fprintf(e.stdout, "%d record(s) left dead: the queue is full (max_pending); run queue retry --all-dead again once uploads have made room\n", res.Left)
	}
	return nil
}

func (c *queueCmd) drop(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("queue drop")
	yes := fs.Bool("yes", false, "really delete the record")
	id, err := parseOneID(e, fs, args, "usage: scanagent queue drop ID --yes (ID: 12 for a scan record, r12 for a rejected frame)")
	if err != nil {
		return err
	}
	if !*yes {
		return usagef("queue drop deletes %s for good; it will never be uploaded. Add --yes to do it", id.Noun())
	}
	st, err := openStore(ctx, e, true)
	if err != nil {
		return err
	}
	defer st.Close()
	s, err := st.Drop(ctx, id)
	if err != nil {
		return err
	}
	if id.Rejected {
		fmt.Fprintf(e.stdout, "dropped rejected frame %s\n", id)
	} else {
		fmt.Fprintf(e.stdout, "dropped %s record %s\n", s, id)
	}
	return nil
}

func (c *queueCmd) export(ctx context.Context, e *env, args []string) (err error) {
	fs := newFlagSet("queue export")
	state := stateFlags(fs)
	format := fs.String("format", "jsonl", "jsonl or csv")
	withIDCard := fs.Bool("include-idcard", false, "include the idCard ciphertext (for the platform's staff only)")
	bom := fs.Bool("bom", runtime.GOOS == "windows", "csv: start with a UTF-8 byte order mark, so that Excel shows Chinese names right (default on Windows; --bom=false to leave it out)")
	output := fs.String("output", "", "write to this new file (mode 0600) instead of standard output")
	pos, err := parseArgs(e, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("queue export takes no arguments; it writes to standard output, or to --output FILE")
	}
	if *format != "jsonl" && *format != "csv" {
		return usagef("--format must be jsonl or csv")
	}
	s, err := state()
	if err != nil {
		return err
	}
	st, err := openStore(ctx, e, false)
	if err != nil {
		return err
	}
	defer st.Close()
	if *output != "" {
		f, err := os.OpenFile(*output, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) // never another user's to read
		if err != nil {
			return fmt.Errorf("export: %w (it must not exist yet)", err)
		}
		defer func() { err = errors.Join(err, f.Sync(), f.Close()) }()
		ef := *e
		ef.stdout = f
		e = &ef
	}
	if *withIDCard && s != queue.StateRejected {
		fmt.Fprintln(e.stderr, "scanagent: warning: this export contains idCard ciphertexts. The key is the public app id, "+
			"so they are as sensitive as the ID numbers: hand the file only to the platform's staff and delete it afterwards.")
	}
	var write func(queue.Item) error
	var cw *csvWriter
	switch *format {
	case "jsonl":
		write = func(it queue.Item) error {
			var v any = it.Record
			if it.Rejection != nil {
				v = it.Rejection
			}
			b, err := json.Marshal(v)
			if err != nil {
				return err
			}
			_, err = e.stdout.Write(append(termtext.JSON(b), '\n'))
			return err
		}
	case "csv":
		if *bom {
			if _, err := io.WriteString(e.stdout, "\ufeff"); err != nil {
				return err
			}
		}
		cw = &csvWriter{csv.NewWriter(e.stdout)}
		if s == queue.StateRejected {
			cw.Write([]string{"id", "reader", "time", "reason", "raw_hex"})
			write = func(it queue.Item) error {
				r := it.Rejection
				return cw.Write([]string{r.ID.String(), r.Reader, csvTime(r.Time), r.Reason, hex.EncodeToString(r.Raw)})
			}
		} else {
			cw.Write([]string{"id", "reader", "termName", "termSn", "xgh", "name", "idCard", "userType", "scanTime",
				"enqueuedAt", "tries", "attempts", "lastError", "deadReason", "deadAt"})
			write = func(it queue.Item) error {
				r := it.Record
				return cw.Write([]string{strconv.FormatUint(r.ID, 10), r.Reader, r.TermName, r.TermSn, r.Xgh, r.Name, r.IDCard,
					r.UserType, csvTime(r.ScanTime), csvTime(r.EnqueuedAt), strconv.Itoa(r.Tries), strconv.Itoa(r.Attempts), r.LastError,
					r.DeadReason, csvTime(r.DeadAt)})
			}
		}
	}
	var werr error
	err = eachItem(ctx, st, s, *withIDCard, func(it queue.Item) bool {
		if !*withIDCard {
			it = it.Masked()
		}
		werr = write(it)
		return werr == nil
	})
	if cw != nil {
		cw.Flush()
		werr = errors.Join(werr, cw.Error())
	}
	return errors.Join(err, werr)
}

// csvWriter writes every cell through termtext.CSVCell: control characters
// escaped, formulas guarded.
type csvWriter struct{ *csv.Writer }

func (w *csvWriter) Write(cells []string) error {
	for i, c := range cells {
		cells[i] = termtext.CSVCell(c)
	}
	return w.Writer.Write(cells)
}

func csvTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format(time.RFC3339Nano)
}

func (c *queueCmd) compact(e *env, args []string) error {
	fs := newFlagSet("queue compact")
	if pos, err := parseArgs(e, fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usagef("queue compact takes no arguments")
	}
	cfg, err := e.loadConfig()
	if err != nil {
		return err
	}
	path := filepath.Join(cfg.Agent.DataDir, queueFile)
	res, err := queue.Compact(path, offlineLockTimeout)
	if errors.Is(err, queue.ErrLocked) {
		return fmt.Errorf("%s is in use: queue compact works only while the agent is stopped (scanagent service stop, or systemctl stop scanagent), then start it again", path)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "compacted %s: %s → %s\n", path, humanBytes(res.Before), humanBytes(res.After))
	return nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func (c *queueCmd) salvage(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("queue salvage")
	pos, err := parseArgs(e, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("usage: scanagent queue salvage FILE (a damaged queue file, e.g. queue.db.corrupt-20260102T030405Z)")
	}
	file, err := filepath.Abs(pos[0])
	if err != nil {
		return err
	}
	if _, err := os.Stat(file); err != nil {
		return err
	}
	st, err := openStore(ctx, e, true)
	if err != nil {
		return err
	}
	defer st.Close()
	res, err := st.Salvage(ctx, file)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "salvaged %d pending and %d dead record(s) from %s into %s", res.Pending, res.Dead, file, st.Where())
	if res.Unreadable > 0 {
		fmt.Fprintf(e.stdout, "; %d damaged stretch(es) could not be read", res.Unreadable)
	}
	fmt.Fprintln(e.stdout)
	if res.Pending > 0 {
		fmt.Fprintln(e.stdout, "the pending ones will be uploaded; keep the damaged file until they are delivered")
	}
	return nil
}

// queueStore is what the queue commands need, from the running agent's
// admin API or from the file. Items come back as stored; the commands mask
// them.
type queueStore interface {
	Stats(ctx context.Context) (queue.Stats, error)
	List(ctx context.Context, s queue.State, after uint64, limit int, withIDCard bool) (admin.RecordsPage, error)
	Get(ctx context.Context, id queue.Ref) (queue.Item, error)
	Retry(ctx context.Context, id queue.Ref) (int, error)
	RetryDead(ctx context.Context) (queue.Retried, error)
	Drop(ctx context.Context, id queue.Ref) (queue.State, error)
	Salvage(ctx context.Context, file string) (queue.Salvaged, error)
	Where() string
	Close() error
}

// dbStore is the queue file opened directly (the agent is stopped): the
// same queue methods the admin API serves.
type dbStore struct{ q *queue.Queue }

func (d dbStore) Stats(context.Context) (queue.Stats, error) { return d.q.Stats() }

func (d dbStore) List(_ context.Context, s queue.State, after uint64, limit int, withIDCard bool) (admin.RecordsPage, error) {
	return d.q.Page(s, after, limit, withIDCard)
}

func (d dbStore) Get(_ context.Context, id queue.Ref) (queue.Item, error) { return d.q.Find(id) }

func (d dbStore) Retry(ctx context.Context, id queue.Ref) (int, error) { return d.q.RetryOne(ctx, id) }

func (d dbStore) RetryDead(ctx context.Context) (queue.Retried, error) { return d.q.RetryDead(ctx) }

func (d dbStore) Drop(ctx context.Context, id queue.Ref) (queue.State, error) {
	return d.q.DropOne(ctx, id)
}

func (d dbStore) Salvage(ctx context.Context, file string) (queue.Salvaged, error) {
	return queue.Salvage(ctx, file, d.q)
}

func (d dbStore) Where() string { return d.q.Path() }
func (d dbStore) Close() error  { return d.q.Close() }

// How long the commands wait: for the agent's socket to answer /healthz,
// and for the file's lock. Together well under the 2 seconds a command may take to say it cannot reach the queue.
const (
	probeTimeout       = 700 * time.Millisecond
	offlineLockTimeout = 500 * time.Millisecond
)

// openStore reaches the queue: through the running agent's socket when it
// answers, else by opening the file (read-only unless write). It never waits
// longer than probeTimeout + offlineLockTimeout.
func openStore(ctx context.Context, e *env, write bool) (queueStore, error) {
	cfg, err := e.loadConfig()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(cfg.Agent.DataDir, queueFile)
	api, apiErr := dialAgent(ctx, cfg)
	if apiErr == nil {
		return api, nil
	}
	if errors.Is(apiErr, errAgentRefused) {
		return nil, apiErr
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no queue database at %s: the agent has not run with this configuration yet (data_dir = %s)", path, cfg.Agent.DataDir)
	}
	// NoNewJournal: the journal file is left for the agent to create, as
	// its own user (these commands are often run as root).
	q, err := queue.Open(path, queue.Options{ReadOnly: !write, LockTimeout: offlineLockTimeout, MaxPending: cfg.Queue.MaxPending,
		KeepDelivered: cfg.Queue.KeepDelivered, NoNewJournal: true})
	if errors.Is(err, queue.ErrLocked) {
		return nil, fmt.Errorf("%s is locked by another process (is the agent running?) and the agent's admin socket does not answer (%v); "+
			"wait for the agent to finish starting, or stop it (where the system has no AF_UNIX, as under wine, stop the agent to use queue commands)",
			path, apiErr)
	}
	if err != nil {
		if errors.Is(err, queue.ErrCorrupt) {
			return nil, fmt.Errorf("%w; start the agent to move it aside, then run scanagent queue salvage on the moved file", err)
		}
		return nil, err
	}
	return dbStore{q}, nil
}
