// Package upload delivers queued scan records to the campus platform's
// scanrecord.jhtm endpoint (docs/platform.md): a single-flight token source, the
// outcome table, exponential backoff with jitter shared by all workers (token
// fetches included), and a dispatcher that streams the backlog oldest first
// and wakes on every new record. Systemic refusals (404/405, or hold_after
// records in a row refused for the same fields) hold the queue instead of
// killing it (systemic.go). It keeps the one platform state the rest of the
// agent reads (Platform, platform.go), measures the platform's clock from
// each answer's Date header, and corrects the scan time of records stamped
// while the local clock was wrong (scantime.go). Network faults are named
// with their fix (Diagnose). It never deletes a record without a "success"
// answer. It does not read serial ports or own the queue file.
package upload

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"scanagent/internal/clock"
	"scanagent/internal/queue"
	"scanagent/internal/redact"
)

// Queue is what the uploader needs of the offline queue.
type Queue interface {
	Pending(after uint64, limit int) ([]queue.Record, error)
	PendingRecord(id uint64) (queue.Record, error)
	Deliver(ctx context.Context, ids ...uint64) error
	Kill(ctx context.Context, id uint64, reason string) error
	Note(ctx context.Context, id uint64, attempts int, lastErr string, next time.Time) error
	Revive(ctx context.Context, why string, ids ...uint64) (int, error)
	SetSentScanTime(ctx context.Context, id uint64, t time.Time) error
	Wake() <-chan struct{}
}

// Tokens is what the uploader needs of the token source.
type Tokens interface {
	Token(ctx context.Context) (string, error)
	Invalidate(tok string)
}

// Options configure an Uploader; zero values mean the defaults of config.example.toml.
type Options struct {
	ScanURL          string // base_url + scan_path
	AppID            string
	Params           string // "form" (default) or "query"
	Concurrency      int
	RetryInitial     time.Duration
	RetryMax         time.Duration
	MaxErrorAttempts int
	// HoldAfter records in a row refused for the same errorFields hold
	// the queue (systemic refusal); 0 = 3.
	HoldAfter int
	// MaxClockSkew: beyond it the clock is a fault, and a scan stamped by
	// a clock off by more is sent with the corrected time; 0 = 2m.
	MaxClockSkew  time.Duration
	ShutdownGrace time.Duration  // for requests in flight at shutdown; 0 = 3s
	DateFormat    string         // Java style; "" = yyyy-MM-dd HH:mm:ss
	Location      *time.Location // nil = Asia/Shanghai
	Logger        *slog.Logger
	Redactor      *redact.Redactor
	Now           func() time.Time // nil = Clock.Now
	Clock         clock.Clock      // nil = the system clock
	// Recrypt re-encrypts an idCard encrypted with the key of another
	// app_id (a record stored while app_id was mistyped) for this AppID;
	// nil = records are sent as stored.
	Recrypt func(keyAppID, idCard string) (string, error)
	// Platform receives what the uploader sees of the platform; nil = a
	// new one (see Uploader.Platform).
	Platform *Platform
	Rand     func() float64 // in [0,1), for jitter
}

// Stats counts upload attempts by outcome.
type Stats struct {
	Delivered, Dead, Transient, Counted, BadToken, Held int64
	Corrected                                           int64 // attempts sent with a corrected scanDate
	Uncorrectable                                       int64 // attempts sent with a plainly wrong scanDate that could not be corrected
}

// Uploader drains the queue to the platform.
type Uploader struct {
	q      Queue
	tokens Tokens
	client *http.Client
	opts   Options
	layout string
	log    *slog.Logger
	gate   *gate
	hold   hold
	clock  clock.Clock
	plat   *Platform
	streak streak

	ownMu    sync.Mutex
	owned    map[uint64]struct{} // records a worker has
	finished map[uint64]struct{} // records delivered or dead since the dispatcher's last read
	rewind   chan struct{}       // the dispatcher starts again from the oldest

	delivered, dead, transient, counted, badToken, held, corrected, uncorrectable atomic.Int64
	skewTry                                                                       atomic.Int64 // when the clock was last asked for (Unix ns)
}

// New checks the options and returns an uploader. client should not follow
// redirects (see NewHTTPClient).
func New(q Queue, tokens Tokens, client *http.Client, opts Options) (*Uploader, error) {
	if opts.ScanURL == "" {
		return nil, errors.New("upload: no scan URL")
	}
	if opts.Params == "" {
		opts.Params = "form"
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 2
	}
	if opts.RetryInitial <= 0 {
		opts.RetryInitial = time.Second
	}
	if opts.RetryMax < opts.RetryInitial {
		opts.RetryMax = max(30*time.Second, opts.RetryInitial)
	}
	if opts.MaxErrorAttempts <= 0 {
		opts.MaxErrorAttempts = 5
	}
	if opts.ShutdownGrace <= 0 {
		opts.ShutdownGrace = 3 * time.Second
	}
	if opts.DateFormat == "" {
		opts.DateFormat = "yyyy-MM-dd HH:mm:ss"
	}
	layout, err := javaLayout(opts.DateFormat)
	if err != nil {
		return nil, err
	}
	if opts.Location == nil {
		if opts.Location, err = time.LoadLocation("Asia/Shanghai"); err != nil {
			return nil, err
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.HoldAfter <= 0 {
		opts.HoldAfter = 3
	}
	if opts.MaxClockSkew <= 0 {
		opts.MaxClockSkew = 2 * time.Minute
	}
	opts.Clock = clock.Or(opts.Clock)
	if opts.Now == nil {
		opts.Now = opts.Clock.Now
	}
	if opts.Platform == nil {
		opts.Platform = NewPlatform(PlatformOptions{Clock: opts.Clock, Logger: opts.Logger, MaxClockSkew: opts.MaxClockSkew})
	}
	if opts.Rand == nil {
		opts.Rand = rand.Float64
	}
	u := &Uploader{q: q, tokens: tokens, client: client, opts: opts, layout: layout, log: opts.Logger,
		clock: opts.Clock, plat: opts.Platform, owned: map[uint64]struct{}{}, finished: map[uint64]struct{}{},
		rewind: make(chan struct{}, 1)}
	u.gate = newGate(opts.RetryInitial, opts.RetryMax, opts.Now, opts.Rand, opts.Clock)
	if client != nil {
		// A probe may take a token fetch, the clock's HEAD and the upload.
		u.gate.probeMax = max(opts.RetryMax, 3*client.Timeout)
	}
	u.hold.changed = make(chan struct{})
	return u, nil
}

// NewHTTPClient builds the platform client: per-request timeout, proxies
// from the environment, extra roots from caFile, keep-alive sized to the
// workers, and redirects not followed (the query string carries the token).
func NewHTTPClient(timeout time.Duration, caFile string, concurrency int) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = concurrency + 1
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate in it", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// Stats returns the attempt counters.
func (u *Uploader) Stats() Stats {
	return Stats{Delivered: u.delivered.Load(), Dead: u.dead.Load(), Transient: u.transient.Load(),
		Counted: u.counted.Load(), BadToken: u.badToken.Load(), Held: u.held.Load(), Corrected: u.corrected.Load(), Uncorrectable: u.uncorrectable.Load()}
}

// Platform is the platform's state as this uploader (and the token source
// sharing it) sees it.
func (u *Uploader) Platform() *Platform { return u.plat }

// Run uploads until ctx ends. Records in flight when ctx ends stay pending;
// deliveries already answered are committed before Run returns.
func (u *Uploader) Run(ctx context.Context) error {
	jobs := make(chan queue.Record)
	// Requests already sent when ctx ends get ShutdownGrace to be answered,
	// so an upload the platform accepted is not left pending (and sent
	// again at the next start); no new attempt starts after ctx ends.
	inflight, cancelInflight := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelInflight()
	stopGrace := context.AfterFunc(ctx, func() {
		t := u.clock.AfterFunc(u.opts.ShutdownGrace, cancelInflight)
		context.AfterFunc(inflight, func() { t.Stop() })
	})
	defer stopGrace()
	var workers sync.WaitGroup
	for range u.opts.Concurrency {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for r := range jobs {
				released := u.deliver(ctx, inflight, r)
				u.disown(r.ID, !released && ctx.Err() == nil)
			}
		}()
	}

	err := u.dispatch(ctx, jobs)
	close(jobs)
	workers.Wait()
	return err
}

// dispatch streams pending records, oldest first, to the workers. The cursor
// moves forward, so a record is handed out once, until a systemic hold
// gives records back: then it starts again from the oldest pending record,
// skipping those a worker still has; during a hold for fields, from the
// record after the refused run (rewindFrom), and from the oldest only when
// nothing is pending after the run.
func (u *Uploader) dispatch(ctx context.Context, jobs chan<- queue.Record) error {
	var cursor uint64
	pastRun := false // cursor was set past a refused run; nothing read since
	again := func() {
		cursor = u.rewindFrom()
		pastRun = cursor != 0
	}
	for {
		select {
		case <-u.rewind:
			again()
		default:
		}
		u.newRead()
		recs, err := u.q.Pending(cursor, 64)
		if err != nil {
			u.log.Error("reading the queue failed", "err", err.Error())
			if !clock.Sleep(u.clock, time.Second, ctx.Done()) {
				return nil
			}
			continue
		}
		if len(recs) == 0 && pastRun {
			cursor, pastRun = 0, false // nothing after the run: probe with it
			continue
		}
		pastRun = false
		if len(recs) == 0 {
			select {
			case <-u.q.Wake():
				continue
			case <-u.rewind:
				again()
				continue
			case <-ctx.Done():
				return nil
			}
		}
		for _, r := range recs {
			cursor = r.ID
			if !u.own(r.ID) {
				continue
			}
			rewound := false
			select {
			case jobs <- r:
			case <-u.rewind:
				u.unown(r.ID)
				again()
				rewound = true
			case <-ctx.Done():
				u.unown(r.ID)
				return nil
			}
			if rewound {
				break
			}
		}
	}
}

// newRead: the dispatcher reads the queue again. Records finished before
// are not in what it reads (their delete or move is committed before
// disown), so it forgets them.
func (u *Uploader) newRead() {
	u.ownMu.Lock()
	defer u.ownMu.Unlock()
	clear(u.finished)
}

// own marks id as handed to a worker. It is false when a worker has it
// (given back still pending, it is looked at again: see disown), or when it was delivered
// or moved to dead since the dispatcher read it: after a rewind, what the
// dispatcher read may include records a worker finished meanwhile.
func (u *Uploader) own(id uint64) bool {
	u.ownMu.Lock()
	defer u.ownMu.Unlock()
	if _, busy := u.owned[id]; busy {
		return false
	}
	if _, done := u.finished[id]; done {
		return false
	}
	u.owned[id] = struct{}{}
	return true
}

// disown: a worker gives id back, finished when it left the pending
// records. One given back still pending (a systemic hold) makes the
// dispatcher start again from the oldest, as its cursor is past it.
func (u *Uploader) disown(id uint64, finished bool) {
	u.ownMu.Lock()
	delete(u.owned, id)
	if finished {
		u.finished[id] = struct{}{}
	}
	u.ownMu.Unlock()
	if !finished {
		u.again()
	}
}

// unown: the dispatcher did not hand id out after all.
func (u *Uploader) unown(id uint64) {
	u.ownMu.Lock()
	defer u.ownMu.Unlock()
	delete(u.owned, id)
}

// again makes the dispatcher start from the oldest pending record.
func (u *Uploader) again() {
	select {
	case u.rewind <- struct{}{}:
	default:
	}
}

// deliver works on one record until it is delivered, dead, or ctx ends,
// or gives it back still pending (a systemic hold): then it reports true.
func (u *Uploader) deliver(ctx, inflight context.Context, r queue.Record) (released bool) {
	log := u.log.With("record", r.ID)
	for ctx.Err() == nil {
		if err := u.hold.wait(ctx); err != nil {
			return false
		}
		probe, err := u.gate.acquire(ctx)
		if err != nil {
			return false
		}
		// While this worker waited (before its first try too: for a hold
		// or the backoff), the record may have been dropped, moved to dead
		// or retried by a technician.
		cur, err := u.q.PendingRecord(r.ID)
		if errors.Is(err, queue.ErrNotFound) {
			u.gate.release(probe)
			log.Info("record no longer pending (dropped or moved by a technician); not uploading it")
			return false
		}
		if err == nil {
			cur.Attempts = r.Attempts
			r = cur
		}
		res := u.attempt(inflight, r, log)
		if ctx.Err() != nil && res.Outcome == Transient {
			return false // shutting down: the record stays pending
		}
		if res.Outcome == Delivered {
			u.delivered.Add(1)
			u.healthy()
			u.resume()
			u.forget(ctx, r, log)
			return false
		}
		// Only the other outcomes show their reason, so only they pay for
		// its redaction (a delivered record's is "success").
		reason := u.opts.Redactor.String(res.Reason)
		switch res.Outcome {
		case Systemic:
			u.held.Add(1)
			u.healthy()
			u.holdSystemic(probe, reason, res.Fix)
			u.note(r, "held: "+reason, u.gate.nextTry(), log)
			return true
		case Dead:
			u.healthy()
			if len(res.Fields) > 0 {
				if u.refused(probe, r, res.Fields, reason, log) {
					u.held.Add(1)
					return true
				}
				return false
			}
			u.resetStreak()
			u.dead.Add(1)
			u.kill(r, reason, log)
			return false
		case Counted:
			u.counted.Add(1)
			u.healthy()
			if u.plat.isHeld() {
				// The hold's probe is answered: the next one goes a
				// retry_max later (healthy leaves a holding gate closed).
				u.gate.hold(probe)
			}
			r.Attempts++
			if r.Attempts >= u.opts.MaxErrorAttempts {
				u.kill(r, fmt.Sprintf("%s (after %d attempts)", reason, r.Attempts), log)
				return false
			}
			wait := u.gate.backoff(r.Attempts)
			u.note(r, reason, u.opts.Now().Add(wait), log)
			log.Warn("platform answered with an error; will retry", "attempt", r.Attempts, "reason", reason)
			if !clock.Sleep(u.clock, wait, ctx.Done()) {
				return false
			}
		default: // Transient, or a token the platform kept refusing
			u.transient.Add(1)
			if res.fault != nil {
				u.plat.unreachable(res.fault.Cause, *res.fault, reason)
			}
			u.gate.failure(probe, res.RetryAfter)
			u.note(r, reason, u.gate.nextTry(), log)
		}
	}
	return false
}

// healthy: the platform answered as the platform. Its state says so; the
// gate opens unless uploading holds.
func (u *Uploader) healthy() {
	u.plat.reached()
	if !u.plat.isHeld() {
		u.gate.success()
	}
}

// forget deletes a delivered record. The worker waits until the delete is
// durable (one journal sync) before it takes another record, so a crash
// repeats at most one upload per worker; the queue still groups the deletes
// of all workers.
//
// When the delete cannot be recorded (a full disk), every worker stops
// sending (see hold) and this one retries the delete with backoff until it
// works, so the backlog is not uploaded while none of it can be marked
// delivered (it would all be sent again after a restart). At shutdown the
// record stays pending: one duplicate at most per worker.
func (u *Uploader) forget(ctx context.Context, r queue.Record, log *slog.Logger) {
	held := false
	for n := 1; ; n++ {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := u.q.Deliver(dctx, r.ID)
		cancel()
		if err == nil {
			if held && u.hold.release() {
				u.log.Info("uploads resumed: deliveries are recorded again")
			}
			return
		}
		if !held {
			held = true
			if u.hold.add(err) {
				u.log.Error("uploads paused: a delivered record could not be removed from the queue; "+
					"no scan is sent until deliveries can be recorded again (free space in data_dir: is the disk full?)",
					"record", r.ID, "err", err.Error())
			}
		}
		if !clock.Sleep(u.clock, u.gate.backoff(n), ctx.Done()) {
			u.hold.release()
			log.Warn("stopping while a delivery could not be recorded; this record will be uploaded again at the next start")
			return
		}
	}
}

// hold stops every worker from sending while a delivery cannot be
// recorded.
type hold struct {
	mu      sync.Mutex
	n       int    // workers holding a delivered record not yet removed
	why     string // the last error removing one
	changed chan struct{}
}

// add counts one more held delivery; it reports whether uploads were
// flowing until now.
func (h *hold) add(err error) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n++
	h.why = err.Error()
	return h.n == 1
}

// release counts one held delivery less; it reports whether uploads flow
// again.
func (h *hold) release() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n--
	if h.n > 0 {
		return false
	}
	h.why = ""
	close(h.changed)
	h.changed = make(chan struct{})
	return true
}

// wait returns once nothing is held, or with ctx's error.
func (h *hold) wait(ctx context.Context) error {
	for {
		h.mu.Lock()
		n, changed := h.n, h.changed
		h.mu.Unlock()
		if n == 0 {
			return nil
		}
		if err := waitChange(ctx, clock.System, changed, -1); err != nil {
			return err
		}
	}
}

// Paused reports how many delivered records wait for their delivery to be
// recorded, and why it failed; while n > 0 no upload is sent.
func (u *Uploader) Paused() (n int, why string) {
	u.hold.mu.Lock()
	defer u.hold.mu.Unlock()
	return u.hold.n, u.hold.why
}

func (u *Uploader) kill(r queue.Record, reason string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := u.q.Kill(ctx, r.ID, reason); err != nil {
		log.Error("could not move the record to dead", "err", err.Error())
		return
	}
	log.Error("platform refused the record; moved to dead (see `scanagent queue list --dead`)", "reason", reason)
}

func (u *Uploader) note(r queue.Record, reason string, next time.Time, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := u.q.Note(ctx, r.ID, r.Attempts, reason, next); err != nil && !errors.Is(err, queue.ErrNotFound) {
		log.Warn("could not record the failed attempt", "err", err.Error())
	}
}

// attempt sends the record once, re-fetching the token once if the platform
// says it is bad.
func (u *Uploader) attempt(ctx context.Context, r queue.Record, log *slog.Logger) Result {
	for try := 0; ; try++ {
		tok, err := u.tokens.Token(ctx)
		if err != nil {
			res := Result{Outcome: Transient, Reason: "no access token: " + err.Error()}
			if !errors.Is(err, ErrBadCredentials) {
				f := Diagnose(err)
				f.Cause = "token request: " + f.Cause
				res.fault = &f
			}
			return res
		}
		res := u.send(ctx, r, tok, log)
		if res.Outcome != BadToken {
			return res
		}
		u.badToken.Add(1)
		u.tokens.Invalidate(tok)
		if try == 1 {
			log.Warn("the platform refused a freshly fetched token; check [platform] client_id and the clock", "reason", u.opts.Redactor.String(res.Reason))
			u.plat.credentials("the platform refused a freshly fetched token", "check [platform] client_id and base_url (the token must come from the same platform), and the clock")
			return Result{Outcome: Transient, Reason: "token refused twice: " + res.Reason}
		}
	}
}

// send makes one POST to scanrecord.jhtm.
func (u *Uploader) send(ctx context.Context, r queue.Record, tok string, log *slog.Logger) Result {
	if _, known := u.plat.Skew(); !known {
		u.measureSkew(ctx)
	}
	vals := url.Values{}
	vals.Set("termName", r.TermName)
	vals.Set("termSn", r.TermSn)
	vals.Set("name", r.Name)
	vals.Set("xgh", r.Xgh)
	idCard := r.IDCard
	if r.KeyAppID != "" && r.KeyAppID != u.opts.AppID && idCard != "" && u.opts.Recrypt != nil {
		if c, err := u.opts.Recrypt(r.KeyAppID, idCard); err == nil {
			idCard = c
		}
	}
	vals.Set("idCard", idCard)
	vals.Set("userType", r.UserType)
	vals.Set("scanDate", u.scanTime(r, log).In(u.opts.Location).Format(u.layout))
	vals.Set("appId", u.opts.AppID)

	target := u.opts.ScanURL + "?access_token=" + url.QueryEscape(tok)
	var body io.Reader
	if u.opts.Params == "query" {
		target += "&" + vals.Encode()
	} else {
		body = strings.NewReader(vals.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, body)
	if err != nil {
		return Result{Outcome: Dead, Reason: "cannot build the request: " + err.Error()}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
	}
	req.Header.Set("Accept", "application/json")
	start := u.clock.Now()
	resp, err := u.client.Do(req)
	if err != nil {
		f := Diagnose(err)
		return Result{Outcome: Transient, Reason: u.opts.Redactor.Error(err), Fix: f.Fix, fault: &f}
	}
	defer resp.Body.Close()
	u.plat.observe(start, u.clock.Now(), resp.Header)
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswer+1))
	if err != nil {
		f := Diagnose(err)
		return Result{Outcome: Transient, Reason: "reading the answer: " + u.opts.Redactor.Error(err), Fix: f.Fix, fault: &f}
	}
	res := Classify(resp.StatusCode, resp.Header, raw, u.opts.Now())
	if res.Outcome == Transient {
		fix := res.Fix
		if fix == "" {
			fix = "the platform is failing or overloaded: it is retried; if it lasts, ask the platform's administrators"
		}
		cause := res.Reason
		if res.Fix == FixPortal {
			cause = "not the platform's answer: a captive portal or a proxy's page (" + clip(res.Reason, 100) + ")"
		}
		res.fault = &Fault{Cause: u.opts.Redactor.String(cause), Fix: fix}
	}
	return res
}
