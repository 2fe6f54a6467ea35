package upload

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"scanagent/internal/queue"
)

// plainlyWrongBefore: no scan is stamped before this by a right clock.
var plainlyWrongBefore = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// measureSkew asks the platform's origin for anything (HEAD /) to read its
// clock before the first record goes out, so that a scan stamped by a
// wrong clock is corrected from the first upload on. It asks at most once
// per retry_max (not on every attempt of an outage).
func (u *Uploader) measureSkew(ctx context.Context) {
	now, last := u.clock.Now().UnixNano(), u.skewTry.Load()
	if last != 0 && now-last < int64(u.opts.RetryMax) && now >= last || !u.skewTry.CompareAndSwap(last, now) {
		return
	}
	target, err := url.Parse(u.opts.ScanURL)
	if err != nil {
		return
	}
	target.Path, target.RawQuery = "/", ""
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, target.String(), nil)
	if err != nil {
		return
	}
	start := u.clock.Now()
	resp, err := u.client.Do(req)
	if err != nil {
		return
	}
	resp.Body.Close()
	u.plat.observe(start, u.clock.Now(), resp.Header)
}

// scanTime is the scanDate to send for r. A terminal without a clock
// battery boots with a wrong time and is set right by NTP later; a scan
// stamped before that carries the wrong date. When the agent can know the
// correction it sends the corrected time (and keeps the stamp):
//
//   - the scan was stamped during this boot (its boot clock reading has
//     this boot's ID): the boot clock never jumps, so the scan happened
//     (boot now − boot then) ago, by the wall clock now, corrected by the
//     platform's clock when that is measured and beyond max_clock_skew;
//   - else, while the platform's clock is measured to differ by more than
//     max_clock_skew, the stamp moved by that difference (the clock is
//     still wrong, so it was when the scan was stamped).
//
// A difference within max_clock_skew is not corrected, nor one that
// would be implausible: later than the platform's now (the local clock
// corrected by the skew) plus max_clock_skew, or before 2020 (a stamp of
// an earlier boot whose clock was right, while this boot's is wrong). A
// scan that cannot be corrected but is plainly wrong (stamped in the
// future of the platform's clock, or before 2020: a clock that booted at
// its epoch) is sent as stamped and counted (Stats.Uncorrectable).
func (u *Uploader) scanTime(r queue.Record, log *slog.Logger) time.Time {
	t := r.ScanTime
	skew, known := u.plat.Skew()
	if !known || !u.plat.skewed(skew) {
		skew = 0
	}
	id, now := u.clock.Boot()
	platNow := u.clock.Now().Add(skew)
	implausible := func(x time.Time) bool {
		return x.Before(plainlyWrongBefore) || x.After(platNow.Add(u.opts.MaxClockSkew))
	}
	var est time.Time
	switch {
	case r.Boot != "" && r.Boot == id && r.BootAt > 0 && now >= r.BootAt:
		est = platNow.Add(-(now - r.BootAt))
	case skew != 0:
		est = t.Add(skew)
	}
	if est.IsZero() || implausible(est) {
		if implausible(t) {
			u.uncorrectable.Add(1)
		}
		return t
	}
	if d := est.Sub(t); d <= u.opts.MaxClockSkew && d >= -u.opts.MaxClockSkew {
		return t
	}
	est = est.Round(time.Second)
	if !r.SentScanTime.Equal(est) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := u.q.SetSentScanTime(ctx, r.ID, est); err == nil {
			log.Info("scan time corrected: the clock was wrong when the scan was stamped",
				"stamped", t.Format(time.RFC3339), "sent", est.Format(time.RFC3339))
		}
		cancel()
	}
	u.corrected.Add(1)
	return est
}
