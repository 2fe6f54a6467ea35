// Package reader reads scans from one serial device and stores them.
//
// A Reader owns one [[reader]] table: it opens the port (a device path, or
// "usb:VID:PID[:SERIAL]" resolved at every connect), cuts the byte stream into
// frames (line, stx-etx or idle framing), decodes each frame into a person
// (delimited, json, regex, or card: a card number looked up in the roster
// CSV, reloaded when the file changes) after transcoding it from the
// scanner's encoding (utf-8, gbk, gb18030), validates the scan (every field
// present, UTF-8, free of control characters and within its maximum length,
// as package field says; userType mapped by user_types; the ID number's
// check character under id_check = "cn18"), drops repeats of the same person
// within the dedupe window, stamps the record with the terminal's name and
// serial number and the time the frame completed, encrypts the ID number,
// hands the record to the Store (which returns once it is durable) and only
// then writes the ack_ok bytes back to the scanner; ack_fail when the frame
// was rejected or could not be stored. The scans that one read completes are
// stored together, in one commit, and acknowledged in their order: a scanner
// that sends faster than the disk syncs shares commits instead of queueing
// for one each. A missing or unplugged port is retried
// every RetryInterval, logged once per state change.
//
// Frames that do not decode or validate are stored as rejections, answered
// with ack_fail so that the person scans again, with their raw bytes and a
// reason naming the field and the rule,
// after every run of digits that could be an ID number has been masked
// (redact.Bytes). The plaintext ID number never reaches the Store, a log line
// or an error: frame contents are logged only at debug level, masked, and the
// roster's idCard column is never logged.
//
// Monitor runs the same port, framer and decoder for a technician without
// storing or acknowledging anything.
//
// It does not upload, queue, retry storing, or encrypt by itself
// (Options.Encrypt does).
package reader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.bug.st/serial"
	"go.bug.st/serial/enumerator"
	"golang.org/x/text/encoding"

	"scanagent/internal/clock"
	"scanagent/internal/config"
	"scanagent/internal/queue"

	"scanagent/internal/redact"
)

const (
	// readTimeout bounds each Read where the loop must wake up by itself:
	// on Windows, to notice cancellation (a Read may not return after
	// Close: upstream issue 77), and in Monitor, to notice a stall. On Unix
	// Run reads without a timeout while no frame is pending (no wake-ups
	// at idle) and closes the port to end the Read when ctx ends.
	readTimeout          = 200 * time.Millisecond
	defaultRetryInterval = 2 * time.Second
	readBufSize          = 4096
	// rejectLogEvery limits warnings about rejected frames: garbage on the
	// line would otherwise flood the log. Each one is counted in Stats.
	rejectLogEvery = time.Minute
	// maxRecent is the size above which expired debounce entries are pruned.
	maxRecent = 256
)

// Log attribute keys.
const (
	keyReader  = "reader"
	keyPort    = "port"
	keyErr     = "err"
	keyReason  = "reason"
	keyFrame   = "frame"
	keyRetry   = "retry_every"
	keyCause   = "cause"
	keyFix     = "fix"
	keyID      = "id"
	keyBytes   = "bytes"
	keySkipped = "not_logged_since"
)

// Store keeps what the reader produces. EnqueueBatch returns once the records
// are durable, in one commit, and assigns their IDs; it returns how many of
// them, from the first, it stored (fewer with queue.ErrFull). Reject keeps a
// frame that did not decode.
type Store interface {
	EnqueueBatch(ctx context.Context, recs []*queue.Record) (int, error)
	Reject(ctx context.Context, rj *queue.Rejection) error
}

// Options are the optional dependencies and settings of a Reader, except
// Encrypt, which is required. The zero value of every other field means its
// default.
type Options struct {
	// Logger receives one line per state change and per failure; nil
	// discards. It is narrowed with the reader's name.
	Logger *slog.Logger
	// Now stamps scans and drives the dedupe window; default Clock.Now.
	Now func() time.Time
	// Clock is the time source; nil = the system clock. Its boot clock
	// is read with each stamp (Record.Boot), for the uploader to correct
	// a scan stamped while the wall clock was wrong.
	Clock clock.Clock
	// KeyAppID is the app_id whose key Encrypt uses, kept with each
	// record (queue.Record.KeyAppID).
	KeyAppID string
	// Encrypt turns a plaintext ID number into the form sent to the
	// platform. Required: the reader encrypts before anything is stored.
	// It is not called for a scan that carries no ID number.
	Encrypt func(plain string) (string, error)
	// DedupeWindow is [queue] dedupe_window: a scan of the same xgh on this
	// reader less than DedupeWindow after the previous one (stored or
	// debounced) is acknowledged with ack_ok and not stored again. Zero or
	// negative turns debouncing off.
	DedupeWindow time.Duration
	// RetryInterval is the delay before reopening a missing or lost port;
	// default 2s.
	RetryInterval time.Duration
	// Open opens a serial port; default serial.Open.
	Open func(path string, mode *serial.Mode) (serial.Port, error)
	// Tap receives every frame's verdict and the port's state changes
	// while someone watches (monitor --live); nil = none.
	Tap *Tap
}

// Stats are a Reader's counters since it was created.
type Stats struct {
	Read        uint64 // frames cut from the stream, rejected ones included
	Rejected    uint64 // frames refused by the framer, the decoder or validation (ack_fail)
	Debounced   uint64 // repeats within the dedupe window, acked and not stored
	Stored      uint64 // records the Store accepted
	StoreFailed uint64 // scans that could not be encrypted or stored (ack_fail)
}

// Reader reads scans from one serial device. Build it with New and run it
// with Run.
type Reader struct {
	cfg       config.Reader
	store     Store
	log       *slog.Logger
	now       func() time.Time
	clock     clock.Clock
	keyAppID  string
	encrypt   func(string) (string, error)
	dedupe    time.Duration
	retry     time.Duration
	tap       *Tap
	open      func(string, *serial.Mode) (serial.Port, error)
	listPorts func() ([]*enumerator.PortDetails, error)

	mode    serial.Mode
	usb     *usbSpec // nil when cfg.Port is a device path
	framer  framer
	decoder decoder
	charset encoding.Encoding // the scanner's encoding; nil for UTF-8
	// idCheckCN18 is id_check = "cn18".
	idCheckCN18 bool
	ackOK       []byte
	ackFail     []byte

	running   atomic.Bool
	connected atomic.Bool
	// downSince is when the port was last found closed (Unix nanoseconds,
	// 0 while connected); lastScan when a scan was last stored.
	downSince, lastScan atomic.Int64
	// rereadRoster asks the reading goroutine to re-read the roster
	// before the next frame (ReloadRoster).
	rereadRoster atomic.Bool

	read, rejected, debounced, stored, storeFailed atomic.Uint64

	// Owned by the goroutine in Run.
	pending       []*queue.Record      // accepted scans of this read, not yet stored
	recent        map[string]time.Time // xgh → last scan, for debouncing
	lastRejectLog time.Time
	rejectsQuiet  int // rejections not logged since lastRejectLog
	stall         stall
}

// New checks the reader's configuration (line settings, port, framing,
// decoder, ack bytes) and returns a Reader that stores into store. Its errors
// name the offending key; the caller adds which [[reader]] it was.
func New(cfg config.Reader, store Store, opts Options) (*Reader, error) {
	if store == nil {
		return nil, errors.New("no store")
	}
	if opts.Encrypt == nil {
		return nil, errors.New("no Encrypt function: the ID number must be encrypted before it is stored")
	}
	r, err := build(cfg, opts)
	if err != nil {
		return nil, err
	}
	r.store = store
	return r, nil
}

// build checks the line settings, port, framing, decoder and ack bytes and
// returns a Reader without a Store: what New and Monitor share.
func build(cfg config.Reader, opts Options) (*Reader, error) {
	if cfg.Name == "" {
		return nil, errors.New("name is empty: give each [[reader]] a name")
	}
	if cfg.Port == "" {
		return nil, errors.New("port is empty: set it to the device, e.g. \"/dev/ttyUSB0\", \"COM3\" or \"usb:VID:PID\"")
	}
	r := &Reader{
		cfg:       cfg,
		log:       opts.Logger,
		now:       opts.Now,
		encrypt:   opts.Encrypt,
		keyAppID:  opts.KeyAppID,
		dedupe:    opts.DedupeWindow,
		retry:     opts.RetryInterval,
		open:      opts.Open,
		tap:       opts.Tap,
		listPorts: func() ([]*enumerator.PortDetails, error) { return enumerator.GetDetailedPortsList() },
		recent:    map[string]time.Time{},
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.log = r.log.With(keyReader, cfg.Name)
	r.clock = clock.Or(opts.Clock)
	if r.now == nil {
		r.now = r.clock.Now
	}
	if r.retry <= 0 {
		r.retry = defaultRetryInterval
	}
	if r.open == nil {
		r.open = serial.Open
	}
	mode, err := serialMode(cfg)
	if err != nil {
		return nil, err
	}
	r.mode = *mode
	spec, isUSB, err := parseUSBSpec(cfg.Port)
	if err != nil {
		return nil, err
	}
	if isUSB {
		r.usb = &spec
	}
	if r.framer, err = newFramer(cfg.Framing, cfg.MaxFrame, cfg.IdleGap.Duration); err != nil {
		return nil, err
	}
	if r.decoder, err = newDecoder(cfg, r.log, r.now); err != nil {
		return nil, err
	}
	if r.charset, err = charsetOf(cfg.Encoding); err != nil {
		return nil, err
	}
	switch cfg.IDCheck {
	case "", "none":
	case "cn18":
		r.idCheckCN18 = true
	default:
		return nil, fmt.Errorf("id_check = %q: want \"none\" or \"cn18\"", cfg.IDCheck)
	}
	if r.ackOK, err = parseHexBytes("ack_ok", cfg.AckOK); err != nil {
		return nil, err
	}
	if r.ackFail, err = parseHexBytes("ack_fail", cfg.AckFail); err != nil {
		return nil, err
	}
	return r, nil
}

// Name is the reader's configured name.
func (r *Reader) Name() string { return r.cfg.Name }

// Connected reports whether the port is open.
func (r *Reader) Connected() bool { return r.connected.Load() }

// Down reports whether the port is closed and since when: since Run started
// for a port never opened, else since it was lost.
func (r *Reader) Down() (since time.Time, down bool) {
	n := r.downSince.Load()
	if n == 0 || r.connected.Load() {
		return time.Time{}, false
	}
	return time.Unix(0, n), true
}

// ReloadRoster makes a card reader re-read its roster file before it
// decodes the next frame, changed or not (SIGHUP); other decoders ignore
// it. A roster is also re-read by itself when its file changes.
func (r *Reader) ReloadRoster() { r.rereadRoster.Store(true) }

// LastScan is when a scan was last stored (zero before the first).
func (r *Reader) LastScan() time.Time {
	if n := r.lastScan.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// Stats returns the counters.
func (r *Reader) Stats() Stats {
	return Stats{
		Read:        r.read.Load(),
		Rejected:    r.rejected.Load(),
		Debounced:   r.debounced.Load(),
		Stored:      r.stored.Load(),
		StoreFailed: r.storeFailed.Load(),
	}
}

// Link states, for logging once per change.
type linkState int

const (
	linkStarting linkState = iota
	linkUnavailable
	linkLost
)

// Run opens the port, reads and stores scans, and reopens the port after
// any error, until ctx ends; then it closes the port and returns nil. It
// starts no goroutines. A Reader runs once at a time.
func (r *Reader) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return fmt.Errorf("reader %q: already running", r.cfg.Name)
	}
	defer r.running.Store(false)
	r.downSince.Store(r.now().UnixNano())
	defer r.downSince.Store(0)

	state, lastErr := linkStarting, ""
	for ctx.Err() == nil {
		port, path, err := r.openPort()
		if err != nil {
			msg := redact.IDNumbers(err.Error())
			fault := DiagnosePort(r.cfg.Port, err)
			switch {
			case state == linkStarting:
				r.log.Warn("serial port unavailable; retrying", keyPort, r.cfg.Port, keyErr, msg, keyCause, fault.Cause, keyFix, fault.Fix, keyRetry, r.retry.String())
			case state == linkLost && lastErr == "":
				// The disconnect was logged; the port being gone is its
				// usual consequence.
				r.log.Debug("serial port still unavailable", keyErr, msg)
			case msg != lastErr:
				r.log.Warn("serial port still unavailable", keyPort, r.cfg.Port, keyErr, msg, keyCause, fault.Cause, keyFix, fault.Fix)
			default:
				r.log.Debug("serial port still unavailable", keyErr, msg)
			}
			if state == linkStarting {
				state = linkUnavailable
			}
			lastErr = msg
			if !r.sleep(ctx, r.retry) {
				break
			}
			continue
		}

		r.log.Info("serial port connected", keyPort, path)
		r.connected.Store(true) // after the log line: a watcher of Connected sees it logged
		r.downSince.Store(0)
		r.show(Event{Time: r.now(), Note: "port " + path + " connected; waiting for scans"})
		counted := &countingPort{Port: port}
		r.stall = stall{}
		err = r.serve(ctx, counted, idleReadTimeout, func(frames []frame) {
			r.handle(ctx, port, frames)
			r.watchStall(counted, len(frames))
		})
		_ = port.Close()
		r.downSince.Store(r.now().UnixNano())
		r.connected.Store(false)
		r.framer.Reset()
		if ctx.Err() != nil {
			break
		}
		r.log.Warn("serial port disconnected; reconnecting", keyPort, path, keyErr, redact.IDNumbers(err.Error()), keyRetry, r.retry.String())
		r.show(Event{Time: r.now(), Note: "port " + path + " disconnected (" + redact.IDNumbers(err.Error()) + "); reconnecting every " + r.retry.String()})
		state, lastErr = linkLost, ""
		if !r.sleep(ctx, r.retry) {
			break
		}
	}
	r.log.Debug("reader stopped")
	return nil
}

// sleep waits d or until ctx ends; it reports whether ctx is still alive.
func (r *Reader) sleep(ctx context.Context, d time.Duration) bool {
	return clock.Sleep(r.clock, d, ctx.Done())
}

// openPort resolves and opens the port. The path is returned for logging.
func (r *Reader) openPort() (serial.Port, string, error) {
	path := r.cfg.Port
	if r.usb != nil {
		ports, err := r.listPorts()
		if err != nil {
			return nil, "", fmt.Errorf("list serial ports: %w", err)
		}
		if path, err = r.usb.resolve(ports); err != nil {
			return nil, "", err
		}
	}
	mode := r.mode
	p, err := r.open(path, &mode)
	if err != nil {
		return nil, path, fmt.Errorf("open %s: %w", path, err)
	}
	if err := p.SetReadTimeout(readTimeout); err != nil {
		_ = p.Close()
		return nil, path, fmt.Errorf("set read timeout on %s: %w", path, err)
	}
	return p, path, nil
}

// serve reads frames from port and hands them to handle until a read fails
// or ctx ends. Each Read waits at most idle (serial.NoTimeout: as long as it
// takes) or until the framer's deadline; handle is also called with no
// frames after each read. When ctx ends the port is closed, which ends a
// pending Read on Unix (closeEndsRead); mu keeps that Close from racing with
// handle's acks.
func (r *Reader) serve(ctx context.Context, port serial.Port, idle time.Duration, handle func([]frame)) error {
	var mu sync.Mutex
	if closeEndsRead {
		closed := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			defer close(closed)
			mu.Lock()
			defer mu.Unlock()
			_ = port.Close()
		})
		defer func() {
			if !stop() {
				<-closed
			}
		}()
	}
	mu.Lock()
	defer mu.Unlock()

	buf := make([]byte, readBufSize)
	timeout := time.Duration(0) // not yet set
	for ctx.Err() == nil {
		handle(r.framer.Expire(time.Now()))
		want := idle
		if d := r.framer.Deadline(); !d.IsZero() {
			wait := max(time.Until(d), time.Millisecond)
			if want == serial.NoTimeout || wait < want {
				want = wait
			}
		}
		if want != timeout {
			if err := port.SetReadTimeout(want); err != nil {
				return fmt.Errorf("set read timeout: %w", err)
			}
			timeout = want
		}
		mu.Unlock()
		n, err := port.Read(buf)
		mu.Lock()
		if ctx.Err() != nil {
			return nil
		}
		if n > 0 {
			handle(r.framer.Feed(buf[:n], time.Now()))
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
	}
	return nil
}

// handle decodes, debounces, stores and acknowledges complete frames. The
// scans among them are stored in one commit (flush); acks keep frame order.
func (r *Reader) handle(ctx context.Context, port serial.Port, frames []frame) {
	for _, f := range frames {
		r.read.Add(1)
		at := r.now()
		if r.log.Enabled(ctx, slog.LevelDebug) {
			r.log.Debug("frame", keyBytes, len(f.data), keyFrame, string(f.masked()))
		}
		if f.reason != "" {
			r.flush(ctx, port)
			r.reject(ctx, port, f.masked(), f.reason, at)
			r.show(Event{Time: at, Raw: f.masked(), Reason: f.reason})
			continue
		}
		s, reason := r.decode(f.data)
		if reason != "" {
			r.flush(ctx, port)
			r.reject(ctx, port, f.masked(), reason, at)
			r.show(Event{Time: at, Raw: f.masked(), Reason: redact.IDNumbers(reason)})
			continue
		}
		repeat := r.accept(ctx, port, s, at)
		r.show(Event{Time: at, Raw: f.masked(), Fields: s.shown(), Repeat: repeat})
	}
	r.flush(ctx, port)
}

// show hands an event to live watchers, if any.
func (r *Reader) show(ev Event) {
	if r.tap.active() {
		r.tap.publish(r.cfg.Name, ev)
	}
}

// reject stores a refused frame; masked is its content with possible ID
// numbers hidden.
func (r *Reader) reject(ctx context.Context, port serial.Port, masked []byte, reason string, at time.Time) {
	r.rejected.Add(1)
	reason = redact.IDNumbers(reason) // reasons never quote a frame; this makes sure
	rj := &queue.Rejection{
		Reader: r.cfg.Name,
		Raw:    masked,
		Reason: reason,
		Time:   at,
	}
	if err := r.store.Reject(ctx, rj); err != nil && ctx.Err() == nil {
		r.log.Warn("could not store a rejected frame", keyErr, redact.IDNumbers(err.Error()))
	}
	if r.lastRejectLog.IsZero() || at.Sub(r.lastRejectLog) >= rejectLogEvery || at.Before(r.lastRejectLog) {
		if looksLikeNoise(masked) {
			r.log.Warn("frame rejected: it is line noise", keyReason, reason, keySkipped, r.rejectsQuiet,
				keyFix, "check baud (and data_bits, parity, stop_bits) against the scanner's settings: a wrong line speed turns every scan into garbage like this")
		} else {
			r.log.Warn("frame rejected", keyReason, reason, keySkipped, r.rejectsQuiet)
		}
		r.lastRejectLog, r.rejectsQuiet = at, 0
	} else {
		r.rejectsQuiet++
		r.log.Debug("frame rejected", keyReason, reason)
	}
	r.ack(port, r.ackFail)
}

// accept debounces a decoded scan, or stamps and encrypts it and adds it to
// the pending scans that flush stores. An ack written here is written after
// flushing, so that acks keep frame order. It reports a debounced repeat.
func (r *Reader) accept(ctx context.Context, port serial.Port, s scan, at time.Time) (repeat bool) {
	if r.dedupe > 0 {
		if slices.ContainsFunc(r.pending, func(p *queue.Record) bool { return p.Xgh == s.Xgh }) {
			r.flush(ctx, port) // a repeat within this read: store the first one
		}
		if last, ok := r.recent[s.Xgh]; ok {
			if d := at.Sub(last); d >= 0 && d < r.dedupe {
				r.flush(ctx, port)
				r.recent[s.Xgh] = at
				r.debounced.Add(1)
				r.log.Debug("repeat scan debounced")
				r.ack(port, r.ackOK)
				return true
			}
		}
	}

	rec := &queue.Record{
		Reader:   r.cfg.Name,
		TermName: r.cfg.TermName,
		TermSn:   r.cfg.TermSn,
		Xgh:      s.Xgh,
		Name:     s.Name,
		UserType: s.UserType,
		ScanTime: at,
	}
	rec.Boot, rec.BootAt = r.clock.Boot()
	rec.KeyAppID = r.keyAppID
	// GB 11643 writes the check character as a capital X; some readers
	// print it in lower case.
	enc, err := r.encrypt(strings.ToUpper(s.IDCard))
	if err != nil {
		r.flush(ctx, port)
		r.storeFailed.Add(1)
		r.log.Error("scan not stored: could not encrypt the ID number", keyErr, redact.IDNumbers(err.Error()))
		r.ack(port, r.ackFail)
		return
	}
	rec.IDCard = enc
	r.pending = append(r.pending, rec)
	return false
}

// flush stores the pending scans in one commit and acknowledges each:
// ack_ok for the stored ones, ack_fail for the others.
func (r *Reader) flush(ctx context.Context, port serial.Port) {
	if len(r.pending) == 0 {
		return
	}
	n, err := r.store.EnqueueBatch(ctx, r.pending)
	if err != nil {
		n = min(n, len(r.pending))
		if !errors.Is(err, queue.ErrFull) {
			n = 0
		}
		switch {
		case ctx.Err() != nil:
			r.log.Warn("scan not stored: stopping", keyErr, redact.IDNumbers(err.Error()))
		case errors.Is(err, queue.ErrFull) || errors.Is(err, queue.ErrWrite):
			// The agent logs the queue filling up or failing to write, and
			// recovering, once each (one line per state change).
			r.log.Debug("scan not stored", keyErr, redact.IDNumbers(err.Error()))
		default:
			r.log.Error("scan not stored", keyErr, redact.IDNumbers(err.Error()))
		}
	}
	acks := make([]byte, 0, len(r.pending)*max(len(r.ackOK), len(r.ackFail)))
	for i, rec := range r.pending {
		if i < n {
			r.stored.Add(1)
			r.lastScan.Store(rec.ScanTime.UnixNano())
			r.remember(rec.Xgh, rec.ScanTime)
			r.log.Debug("scan stored", keyID, rec.ID)
			acks = append(acks, r.ackOK...)
		} else {
			r.storeFailed.Add(1)
			acks = append(acks, r.ackFail...)
		}
	}
	clear(r.pending)
	r.pending = r.pending[:0]
	r.ack(port, acks)
}

// remember notes a stored scan for debouncing and forgets expired ones.
func (r *Reader) remember(xgh string, at time.Time) {
	if r.dedupe <= 0 {
		return
	}
	if len(r.recent) >= maxRecent {
		for k, t := range r.recent {
			if d := at.Sub(t); d < 0 || d >= r.dedupe {
				delete(r.recent, k)
			}
		}
	}
	r.recent[xgh] = at
}

// ack writes ack bytes to the scanner. A failed write is left to the next
// read to notice (it will fail too if the device is gone).
func (r *Reader) ack(port serial.Port, b []byte) {
	if len(b) == 0 {
		return
	}
	if _, err := port.Write(b); err != nil {
		r.log.Debug("could not write ack bytes", keyErr, redact.IDNumbers(err.Error()))
	}
}
