package admin

import (
	"bufio"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Metrics is one snapshot of the agent's counters and gauges for /metrics.
//
// /metrics is written with the standard library in the Prometheus text
// exposition format (version 0.0.4): a dozen counters and gauges read from
// atomics the components already keep do not need client_golang and its
// dependency tree (registries, collectors, protobuf), which would outweigh
// the rest of the agent. The format is small and stable: per family one
// "# HELP" line (\ and newline escaped), one "# TYPE" line, then one sample
// per line, label values escaped (\, " and newline), families not repeated.
type Metrics struct {
	Readers []ReaderMetrics
	// Uploads counts upload attempts by outcome: delivered, dead,
	// platform_error (counted against max_error_attempts), transient,
	// bad_token.
	Uploads                 map[string]int64
	Pending, Dead, Rejected uint64
	// OldestPendingAge is how long the oldest pending scan has waited, in
	// seconds; 0 when none is pending.
	OldestPendingAge float64
	TokenFetches     int64
	// TokenFailures counts token requests that got no token.
	TokenFailures    int64
	QueueFull        bool
	QueueWriteFailed bool
	// PlatformStates is every platform state with the current one true
	// (scanagent_platform_state{state=…} 1 / 0).
	PlatformStates map[string]bool
	// ClockSkew is the platform's clock minus the local clock in seconds;
	// ClockSkewKnown is false before the first answer.
	ClockSkew      float64
	ClockSkewKnown bool
	// ScanTimesCorrected counts uploads sent with a corrected scanDate.
	ScanTimesCorrected int64
	// ScanTimesUncorrectable counts uploads sent with a plainly wrong
	// scanDate (before 2020, or in the future) that could not be corrected.
	ScanTimesUncorrectable int64
	// Build names the binary: version, commit, Go version.
	Build BuildInfo
	// StartTime is when the process started; LastDelivery when the
	// platform last accepted a record (zero: not since the start).
	StartTime, LastDelivery time.Time
	// AlertsActive is how many alert conditions hold now; Alerts counts
	// alert messages by outcome: sent, refused, failed.
	AlertsActive int
	Alerts       map[string]int64
}

// BuildInfo labels scanagent_build_info.
type BuildInfo struct {
	Version, Commit, GoVersion string
}

// ReaderMetrics are one reader's counters.
type ReaderMetrics struct {
	Name                                      string
	Read, Rejected, Debounced, Stored, Failed uint64
	Connected                                 bool
	// LastScan is when a scan was last stored (zero: not since the start).
	LastScan time.Time
	// TermName and TermSn name the reader's terminal on the platform
	// (scanagent_reader_info).
	TermName, TermSn string
}

// ContentType is the exposition format's media type.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

func (s *Server) metrics(w http.ResponseWriter, _ *http.Request) {
	m := s.opts.Metrics()
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("Cache-Control", "no-store")
	bw := bufio.NewWriter(w)
	WriteMetrics(bw, m)
	bw.Flush()
}

type sample struct {
	labels [][2]string
	value  float64
}

// WriteMetrics writes m in the Prometheus text exposition format.
func WriteMetrics(w *bufio.Writer, m Metrics) {
	perReader := func(f func(r ReaderMetrics) float64) []sample {
		out := make([]sample, 0, len(m.Readers))
		for _, r := range m.Readers {
			out = append(out, sample{[][2]string{{"reader", r.Name}}, f(r)})
		}
		return out
	}
	one := func(v float64) []sample { return []sample{{nil, v}} }
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	var uploads []sample
	outcomes := make([]string, 0, len(m.Uploads))
	for o := range m.Uploads {
		outcomes = append(outcomes, o)
	}
	sort.Strings(outcomes)
	for _, o := range outcomes {
		uploads = append(uploads, sample{[][2]string{{"outcome", o}}, float64(m.Uploads[o])})
	}

	family(w, "scanagent_scans_read_total", "counter", "Frames read from the reader's port, rejected ones included.",
		perReader(func(r ReaderMetrics) float64 { return float64(r.Read) }))
	family(w, "scanagent_scans_rejected_total", "counter", "Frames that did not decode (kept in the rejected bucket).",
		perReader(func(r ReaderMetrics) float64 { return float64(r.Rejected) }))
	family(w, "scanagent_scans_debounced_total", "counter", "Repeats of the same person within dedupe_window, acknowledged and not stored again.",
		perReader(func(r ReaderMetrics) float64 { return float64(r.Debounced) }))
	family(w, "scanagent_scans_stored_total", "counter", "Scans stored durably in the queue (acknowledged with ack_ok).",
		perReader(func(r ReaderMetrics) float64 { return float64(r.Stored) }))
	family(w, "scanagent_scans_store_failed_total", "counter", "Scans that could not be stored (answered with ack_fail): queue full or write error.",
		perReader(func(r ReaderMetrics) float64 { return float64(r.Failed) }))
	family(w, "scanagent_reader_connected", "gauge", "1 while the reader's serial port is open, else 0.",
		perReader(func(r ReaderMetrics) float64 { return b2f(r.Connected) }))
	var info []sample
	for _, r := range m.Readers {
		info = append(info, sample{[][2]string{{"reader", r.Name}, {"term_name", r.TermName}, {"term_sn", r.TermSn}}, 1})
	}
	family(w, "scanagent_reader_info", "gauge", "Always 1; the labels name the reader's terminal on the platform (join on reader).", info)
	family(w, "scanagent_uploads_total", "counter", "Upload attempts by outcome.", uploads)
	family(w, "scanagent_queue_pending", "gauge", "Scans waiting for upload.", one(float64(m.Pending)))
	family(w, "scanagent_queue_dead", "gauge", "Scans the platform refused (dead letters), kept until retried or dropped.", one(float64(m.Dead)))
	family(w, "scanagent_queue_rejected", "gauge", "Rejected frames kept for inspection.", one(float64(m.Rejected)))
	family(w, "scanagent_queue_oldest_pending_age_seconds", "gauge", "Age of the oldest pending scan in seconds; 0 when none is pending.", one(m.OldestPendingAge))
	family(w, "scanagent_queue_full", "gauge", "1 while max_pending scans are waiting and new scans are refused.", one(b2f(m.QueueFull)))
	family(w, "scanagent_queue_write_failed", "gauge", "1 while the last write to the queue database failed.", one(b2f(m.QueueWriteFailed)))
	family(w, "scanagent_token_fetches_total", "counter", "Access tokens fetched from the platform.", one(float64(m.TokenFetches)))
	family(w, "scanagent_token_failures_total", "counter", "Token requests that got no token (credentials refused, platform unreachable).", one(float64(m.TokenFailures)))
	family(w, "scanagent_last_scan_timestamp_seconds", "gauge", "Unix time of the last scan stored from the reader; 0 = none since the agent started.",
		perReader(func(r ReaderMetrics) float64 { return unixOr0(r.LastScan) }))
	family(w, "scanagent_last_delivery_timestamp_seconds", "gauge", "Unix time the platform last accepted a record; 0 = none since the agent started.",
		one(unixOr0(m.LastDelivery)))
	family(w, "scanagent_alerts_active", "gauge", "Operator alert conditions holding now (reader down, backlog, dead records, ...).", one(float64(m.AlertsActive)))
	var alerts []sample
	for _, o := range []string{"sent", "refused", "failed"} {
		alerts = append(alerts, sample{[][2]string{{"outcome", o}}, float64(m.Alerts[o])})
	}
	family(w, "scanagent_alert_messages_total", "counter", "Operator alert messages by outcome: sent, refused by the platform (dropped), failed (kept and sent again).", alerts)
	family(w, "scanagent_build_info", "gauge", "Always 1; the labels name the build.",
		[]sample{{[][2]string{{"version", m.Build.Version}, {"commit", m.Build.Commit}, {"goversion", m.Build.GoVersion}}, 1}})
	family(w, "scanagent_process_start_time_seconds", "gauge", "Unix time the agent process started.", one(unixOr0(m.StartTime)))
	states := make([]string, 0, len(m.PlatformStates))
	for s := range m.PlatformStates {
		states = append(states, s)
	}
	sort.Strings(states)
	var ss []sample
	for _, s := range states {
		ss = append(ss, sample{[][2]string{{"state", s}}, b2f(m.PlatformStates[s])})
	}
	family(w, "scanagent_platform_state", "gauge", "1 for the platform's current state (unknown, reachable, unreachable, credentials refused, held, clock skewed), 0 for the others.", ss)
	var skew []sample
	if m.ClockSkewKnown {
		skew = one(m.ClockSkew)
	}
	family(w, "scanagent_platform_clock_skew_seconds", "gauge", "The platform's clock minus the local clock in seconds, from the last answer's Date header (absent before the first answer).", skew)
	family(w, "scanagent_scan_times_corrected_total", "counter", "Uploads sent with a scanDate corrected for a wall clock that was wrong when the scan was stamped.", one(float64(m.ScanTimesCorrected)))
	family(w, "scanagent_scan_times_uncorrectable_total", "counter", "Uploads sent as stamped with a plainly wrong scanDate (before 2020, or in the future) that could not be corrected.", one(float64(m.ScanTimesUncorrectable)))
}

func unixOr0(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

func family(w *bufio.Writer, name, typ, help string, samples []sample) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, escapeHelp(help), name, typ)
	for _, s := range samples {
		w.WriteString(name)
		if len(s.labels) > 0 {
			w.WriteByte('{')
			for i, l := range s.labels {
				if i > 0 {
					w.WriteByte(',')
				}
				fmt.Fprintf(w, `%s="%s"`, l[0], escapeLabel(l[1]))
			}
			w.WriteByte('}')
		}
		w.WriteByte(' ')
		w.WriteString(formatValue(s.value))
		w.WriteByte('\n')
	}
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeLabel(s string) string { return labelEscaper.Replace(s) }

func formatValue(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatInt(int64(v), 10)
	}
	if a := math.Abs(v); a >= 1e-3 && a < 1e15 {
		return strconv.FormatFloat(v, 'f', -1, 64) // a Unix time stays readable
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
