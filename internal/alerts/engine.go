package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"scanagent/internal/queue"
	"scanagent/internal/redact"
)

// Store keeps the alerts durably (*queue.Queue has it).
type Store interface {
	AlertStates() (map[string][]byte, error)
	AlertOutbox(limit int) ([]queue.AlertMessage, error)
	UpdateAlerts(ctx context.Context, u queue.AlertUpdate) error
	AlertSent(ctx context.Context, seq uint64) error
}

// Tokens is the agent's one token source (upload.TokenSource): alerts
// never fetch a token of their own.
type Tokens interface {
	Token(ctx context.Context) (string, error)
	Invalidate(tok string)
}

// Options configure an Engine; zero values mean the defaults.
type Options struct {
	To          []string // xgh of the people told; empty = alerts off (Run only waits)
	MessageType string   // "1", "4", "5" (default) or "6"
	MessageTo   string   // mobile number (1) or e-mail address (4)
	AppID       string
	URL         string // base_url + /api/msgsend
	Resend      time.Duration
	// Interval is how often the sources are checked; 0 = 5s.
	Interval time.Duration
	// RetryInitial and RetryMax bound the wait before sending again after
	// a failure; 0 = 1s and 30s.
	RetryInitial, RetryMax time.Duration
	Terminals              []Terminal
	Location               *time.Location // of the times in texts; nil = Asia/Shanghai
	Client                 *http.Client
	Logger                 *slog.Logger
	Redactor               *redact.Redactor
	Now                    func() time.Time
}

// state is a condition's stored state while it is active.
type state struct {
	Key    string    `json:"key"`
	Kind   string    `json:"kind"`
	Reader string    `json:"reader,omitempty"`
	Since  time.Time `json:"since"`
	Detail string    `json:"detail,omitempty"`
	Fix    string    `json:"fix,omitempty"`
	// Told is when the start message or the last reminder was queued.
	Told time.Time `json:"told"`
}

// Message is one message in the outbox: for one person, its text rendered
// when it was queued.
type Message struct {
	Kind string    `json:"kind"` // Start, Reminder, Cleared or TestKind
	Key  string    `json:"key"`
	To   string    `json:"to"` // xgh
	Text string    `json:"text"`
	At   time.Time `json:"at"` // when it was queued
}

// Engine checks the sources and sends the messages.
type Engine struct {
	store   Store
	tokens  Tokens
	sources []Source
	opts    Options
	log     *slog.Logger
	kick    chan struct{}

	mu     sync.Mutex
	states map[string]state // nil until loaded
	// volatile are messages that could not be stored (the disk is full:
	// the very thing to tell): sent from memory, first, best effort.
	volatile []Message

	sent, refused, failed int64 // guarded by mu
}

// New returns an engine storing in store and sending with tokens.
func New(store Store, tokens Tokens, opts Options, sources ...Source) *Engine {
	if opts.MessageType == "" {
		opts.MessageType = "5"
	}
	if opts.Resend <= 0 {
		opts.Resend = 24 * time.Hour
	}
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	if opts.RetryInitial <= 0 {
		opts.RetryInitial = time.Second
	}
	if opts.RetryMax < opts.RetryInitial {
		opts.RetryMax = max(30*time.Second, opts.RetryInitial)
	}
	if opts.Location == nil {
		opts.Location = time.FixedZone("CST", 8*3600)
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 15 * time.Second}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Engine{store: store, tokens: tokens, sources: sources, opts: opts, log: opts.Logger, kick: make(chan struct{}, 1)}
}

// Enabled reports whether anyone is to be told.
func (e *Engine) Enabled() bool { return len(e.opts.To) > 0 }

// AddSource adds a source of conditions; call it before Run.
func (e *Engine) AddSource(s Source) { e.sources = append(e.sources, s) }

// Active returns the keys of the conditions active at the last check.
func (e *Engine) Active() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	keys := make([]string, 0, len(e.states))
	for k := range e.states {
		keys = append(keys, k)
	}
	return keys
}

// Counts returns how many messages were sent, refused by the platform
// (dropped) and failed (kept, sent again later) so far.
func (e *Engine) Counts() (sent, refused, failed int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sent, e.refused, e.failed
}

func (e *Engine) load() error {
	if e.states != nil {
		return nil
	}
	raw, err := e.store.AlertStates()
	if err != nil {
		return err
	}
	e.states = make(map[string]state, len(raw))
	var gone []string
	for k, v := range raw {
		var st state
		if json.Unmarshal(v, &st) != nil || st.Reader != "" && !slices.ContainsFunc(e.opts.Terminals, func(t Terminal) bool { return t.Reader == st.Reader }) {
			gone = append(gone, k) // unreadable, or a reader no longer configured
			continue
		}
		e.states[k] = st
	}
	if len(gone) > 0 {
		return e.store.UpdateAlerts(context.Background(), queue.AlertUpdate{Delete: gone})
	}
	return nil
}

// Check asks every source for its conditions at now and queues the
// messages their changes call for, durably, before it returns.
func (e *Engine) Check(ctx context.Context, now time.Time) error {
	if !e.Enabled() {
		return nil
	}
	var conds []Condition
	for _, src := range e.sources {
		conds = append(conds, src(now)...)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.load(); err != nil {
		return err
	}
	u := queue.AlertUpdate{Put: map[string][]byte{}}
	next := map[string]state{}
	var gone []string
	for _, c := range conds {
		if c.Key == "" {
			c.Key = Key(c.Kind, c.Reader)
		}
		st, was := e.states[c.Key]
		if _, dup := next[c.Key]; dup {
			continue
		}
		switch {
		case c.Active && !was:
			since := c.Since
			if since.IsZero() || since.After(now) {
				since = now
			}
			st = state{Key: c.Key, Kind: string(c.Kind), Reader: c.Reader, Since: since,
				Detail: redact.IDNumbers(c.Detail), Fix: redact.IDNumbers(c.Fix), Told: now}
			e.queue(&u, Start, st, now)
		case c.Active && was:
			st.Detail, st.Fix = redact.IDNumbers(c.Detail), redact.IDNumbers(c.Fix)
			if now.Sub(st.Told) >= e.opts.Resend {
				st.Told = now
				e.queue(&u, Reminder, st, now)
			}
		case !c.Active && was:
			e.queue(&u, Cleared, st, now)
			u.Delete = append(u.Delete, c.Key)
			gone = append(gone, c.Key)
			continue
		default:
			continue
		}
		// Stored when it starts and at each reminder; a new detail alone
		// (a count that moved) is kept in memory, not written every check.
		if !was || st.Told != e.states[c.Key].Told {
			b, _ := json.Marshal(st)
			u.Put[c.Key] = b
		}
		next[c.Key] = st
	}
	var storeErr error
	if err := e.store.UpdateAlerts(ctx, u); err != nil {
		if ctx.Err() != nil {
			return err
		}
		// Not stored: the disk may be full, which is worth telling. Go on
		// from memory; the messages are sent unless the agent stops first.
		storeErr = fmt.Errorf("alerts: could not store the conditions; sending from memory: %w", err)
		for _, b := range u.Send {
			var m Message
			if json.Unmarshal(b, &m) == nil {
				e.volatile = append(e.volatile, m)
			}
		}
	}
	for k, st := range next {
		e.states[k] = st
	}
	for _, k := range gone {
		delete(e.states, k)
	}
	if len(u.Send) > 0 {
		e.wake()
	}
	return storeErr
}

// queue adds one message per person to u.
func (e *Engine) queue(u *queue.AlertUpdate, kind string, st state, now time.Time) {
	text := render(kind, st, now, e.opts.Terminals, e.opts.Location)
	level := slog.LevelWarn
	if kind == Cleared {
		level = slog.LevelInfo
	}
	e.log.Log(context.Background(), level, "alert "+kind, "condition", st.Key, "since", st.Since.Format(time.RFC3339), "text", text)
	for _, to := range e.opts.To {
		b, _ := json.Marshal(Message{Kind: kind, Key: st.Key, To: to, Text: text, At: now})
		u.Send = append(u.Send, b)
	}
}

func (e *Engine) wake() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Run checks the sources every Interval and sends the outbox until ctx
// ends. A failed send is tried again after a backoff (RetryInitial doubling
// up to RetryMax), so the messages of an outage go out once the platform
// is back.
func (e *Engine) Run(ctx context.Context) error {
	if !e.Enabled() {
		<-ctx.Done()
		return nil
	}
	tick := time.NewTicker(e.opts.Interval)
	defer tick.Stop()
	var retry *time.Timer
	var retryC <-chan time.Time
	backoff := time.Duration(0)
	e.wake() // an outbox left from before a restart
	for {
		if err := e.Check(ctx, e.opts.Now()); err != nil && ctx.Err() == nil {
			e.log.Warn("alerts: check failed", "err", err.Error())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			continue
		case <-e.kick:
		case <-retryC:
		}
		if retry != nil {
			retry.Stop()
			retry, retryC = nil, nil
		}
		if err := e.Flush(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			backoff = min(max(backoff*2, e.opts.RetryInitial), e.opts.RetryMax)
			e.log.Debug("alerts: not sent; trying again", "err", err.Error(), "retry_in", backoff.String())
			retry = time.NewTimer(backoff)
			retryC = retry.C
			continue
		}
		backoff = 0
	}
}

// errNotSent marks a message kept in the outbox for a later try.
var errNotSent = errors.New("alert not sent")

// Flush sends the outbox, oldest first, until it is empty or a message
// cannot be sent now (that error is returned; the message stays).
func (e *Engine) Flush(ctx context.Context) error {
	for {
		e.mu.Lock()
		var m Message
		have := len(e.volatile) > 0
		if have {
			m = e.volatile[0]
		}
		e.mu.Unlock()
		if !have {
			break
		}
		res, err := e.send(ctx, m)
		e.mu.Lock()
		if err != nil {
			e.failed++
			e.mu.Unlock()
			return err
		}
		e.volatile = e.volatile[1:]
		e.count(res)
		e.mu.Unlock()
		e.logSent(m, res)
	}
	for {
		msgs, err := e.store.AlertOutbox(32)
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			return nil
		}
		for _, m := range msgs {
			var msg Message
			if json.Unmarshal(m.Data, &msg) != nil {
				e.log.Warn("alerts: unreadable message in the outbox dropped", "seq", m.Seq)
				if err := e.store.AlertSent(ctx, m.Seq); err != nil {
					return err
				}
				continue
			}
			res, err := e.send(ctx, msg)
			if err != nil {
				e.mu.Lock()
				e.failed++
				e.mu.Unlock()
				return err
			}
			e.mu.Lock()
			e.count(res)
			e.mu.Unlock()
			e.logSent(msg, res)
			if err := e.store.AlertSent(ctx, m.Seq); err != nil {
				return err
			}
		}
	}
}

func (e *Engine) count(res Result) {
	if res.Outcome == Sent {
		e.sent++
	} else {
		e.refused++
	}
}

func (e *Engine) logSent(msg Message, res Result) {
	if res.Outcome == Refused {
		e.log.Error("alerts: the platform refused an alert message; it is dropped: check [alerts] to, message_type and message_to",
			"to", msg.To, "reason", res.Reason, "condition", msg.Key)
		return
	}
	e.log.Info("alert sent", "kind", msg.Kind, "condition", msg.Key, "to", msg.To)
}

// Test sends one test message to every person at once, not through the
// outbox, and returns what became of each.
func (e *Engine) Test(ctx context.Context) ([]TestResult, error) {
	if !e.Enabled() {
		return nil, errors.New("alerts are off: [alerts] to is empty; list the xgh of the people to tell")
	}
	now := e.opts.Now()
	text := testText(now, e.opts.Terminals, e.opts.Location)
	var out []TestResult
	for _, to := range e.opts.To {
		res, err := e.send(ctx, Message{Kind: TestKind, Key: "test", To: to, Text: text, At: now})
		tr := TestResult{To: to, Sent: err == nil && res.Outcome == Sent, Text: text}
		switch {
		case err != nil:
			tr.Error = err.Error()
		case res.Outcome != Sent:
			tr.Error = "refused by the platform: " + res.Reason
		}
		out = append(out, tr)
	}
	return out, nil
}

// TestResult is what became of the test message for one person.
type TestResult struct {
	To    string `json:"to"`
	Sent  bool   `json:"sent"`
	Error string `json:"error,omitempty"`
	Text  string `json:"text"`
}
