package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"scanagent/internal/admin"
	"scanagent/internal/config"
	"scanagent/internal/queue"
	"scanagent/internal/reader"
	"scanagent/internal/redact"
	"scanagent/internal/termtext"
	"scanagent/internal/upload"
)

// doctorCmd checks, one line each, everything the agent needs: the config,
// the data dir, each serial port, the platform's DNS/TCP/TLS and the token.
// It never uploads a record. A token it fetches is saved in the queue so the
// agent reuses it (a new token invalidates the previous one); while the agent
// runs it fetches none and asks the agent's /healthz instead.
type doctorCmd struct{}

// doctor collects check results: printed as they come, one line each, or
// with --json as one document at the end.
type doctor struct {
	e       *env
	asJSON  bool
	section string // the check running: config, data_dir, queue, port, platform, token
	results []checkResult
	failed  int
}

// checkResult is one line of doctor's report; --json prints them as is.
type checkResult struct {
	Check  string `json:"check"`  // config, data_dir, queue, port, platform, token
	Status string `json:"status"` // ok, fail or warn
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// add records a result. Checks quote errors and answers from ports, the
// platform and the running agent: their control characters are shown
// escaped (termtext), never sent to the terminal.
func (d *doctor) add(r checkResult) {
	r.Detail = termtext.Line(r.Detail)
	d.results = append(d.results, r)
	if d.asJSON {
		return
	}
	switch r.Status {
	case "ok":
		fmt.Fprintf(d.e.stdout, "✓ %s\n", r.Detail)
	case "warn":
		fmt.Fprintf(d.e.stdout, "! %s\n", r.Detail)
	default:
		fmt.Fprintf(d.e.stdout, "✗ %s\n    fix: %s\n", r.Detail, r.Fix)
	}
}

func (d *doctor) ok(format string, a ...any) {
	d.add(checkResult{Check: d.section, Status: "ok", Detail: fmt.Sprintf(format, a...)})
}

func (d *doctor) warn(format string, a ...any) {
	d.add(checkResult{Check: d.section, Status: "warn", Detail: fmt.Sprintf(format, a...)})
}

// fail reports a failed check with its cause and what to do.
func (d *doctor) fail(what string, err error, fix string) {
	d.failed++
	d.add(checkResult{Check: d.section, Status: "fail", Detail: fmt.Sprintf("%s: %v", what, err), Fix: fix})
}

// finish prints the summary (or the JSON document) and sets the exit status.
func (d *doctor) finish(code int) error {
	if d.asJSON {
		enc := json.NewEncoder(d.e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			OK     bool          `json:"ok"`
			Failed int           `json:"failed"`
			Checks []checkResult `json:"checks"`
		}{d.failed == 0, d.failed, d.results}); err != nil {
			return err
		}
	} else if code != 2 {
		if d.failed > 0 {
			fmt.Fprintf(d.e.stdout, "%d check(s) failed\n", d.failed)
		} else {
			fmt.Fprintln(d.e.stdout, "all checks passed")
		}
	}
	if code != 0 {
		return exitError{code}
	}
	return nil
}

func (c *doctorCmd) Run(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("doctor")
	asJSON := fs.Bool("json", false, "print one JSON document: ok, failed, and each check with status, detail and fix")
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	d := &doctor{e: e, asJSON: *asJSON, section: "config"}
	cfg, err := e.loadConfig()
	if err != nil {
		var probs config.Problems
		if errors.As(err, &probs) {
			for _, p := range probs {
				d.fail("config", p, "edit the file; `scanagent config check` lists every problem")
			}
			return d.finish(2)
		}
		d.fail("config", err, "create it with `scanagent config example > "+e.configPath+"`")
		return d.finish(2)
	}
	d.ok("config %s is valid", cfg.Path)
	for _, w := range cfg.Warnings() {
		d.warn("%s", w)
	}

	d.checkDataDir(cfg)
	health, running := d.checkQueue(cfg)
	d.checkPorts(ctx, cfg, health, running)
	d.checkPlatform(ctx, cfg)
	d.checkToken(ctx, cfg, health, running)
	if d.failed > 0 {
		return d.finish(1)
	}
	return d.finish(0)
}

func (d *doctor) checkDataDir(cfg *config.Config) {
	d.section = "data_dir"
	dir := cfg.Agent.DataDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		fix := "create it and give the agent's user write access (the .deb does: /var/lib/scanagent, owner scanagent)"
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EROFS) {
			fix = diskFix(err)
		}
		d.fail("data dir "+dir, err, fix)
		return
	}
	f, err := os.CreateTemp(dir, ".doctor-*")
	if err == nil {
		_, err = f.Write([]byte("scanagent doctor\n"))
		if serr := f.Sync(); err == nil {
			err = serr
		}
		f.Close()
		os.Remove(f.Name())
	}
	if err != nil {
		d.fail("data dir "+dir+" writable", err, diskFix(err))
		return
	}
	d.ok("data dir %s is writable (fsync works)", dir)
}

// diskFix names the fix for a failed write in data_dir.
func diskFix(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EFBIG), errors.Is(err, syscall.EDQUOT):
		return "the disk is full (or a size limit is reached): free space on the data_dir's file system (df -h); until then new scans are refused (ack_fail)"
	case errors.Is(err, syscall.EROFS):
		return "the file system is read-only (a failing SD card or disk is remounted so): check the system log (dmesg) and the disk"
	case errors.Is(err, os.ErrPermission):
		return "the agent's user cannot write there: give it the directory (chown -R scanagent: data_dir; the .deb does this for /var/lib/scanagent)"
	}
	return "give the agent's user write access, and check the disk is not full or read-only"
}

// checkQueue opens the queue read-only. A lock held by another process means
// the agent is running; then its /healthz is the source for the rest.
func (d *doctor) checkQueue(cfg *config.Config) (health *admin.Health, running bool) {
	d.section = "queue"
	path := filepath.Join(cfg.Agent.DataDir, queueFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		d.ok("queue %s does not exist yet (created at the first start)", path)
		return nil, false
	}
	q, err := queue.Open(path, queue.Options{ReadOnly: true, LockTimeout: 500 * time.Millisecond})
	switch {
	case errors.Is(err, queue.ErrLocked):
		h, herr := fetchHealth(cfg)
		if herr != nil {
			d.ok("queue is held by the running agent (its /healthz: %v)", herr)
			return nil, true
		}
		d.ok("queue is held by the running agent: %d pending, %d dead", h.Pending, h.Dead)
		return h, true
	case err != nil:
		d.fail("queue "+path, err, "if it is damaged, start the agent: it moves the file aside and starts a fresh queue")
		return nil, false
	}
	defer q.Close()
	s, err := q.Stats()
	if err != nil {
		d.fail("queue "+path, err, "start the agent: a damaged file is moved aside")
		return nil, false
	}
	d.ok("queue %s: %d pending, %d dead, %d rejected", path, s.Pending, s.Dead, s.Rejected)
	return nil, false
}

// fetchHealth asks the running agent: through its socket, or where there is
// none (no AF_UNIX, as under wine) its admin_listen /healthz, which carries
// no personal data and is sent nothing secret.
func fetchHealth(cfg *config.Config) (*admin.Health, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	api, err := dialAgent(ctx, cfg)
	if err == nil {
		defer api.Close()
		h, err := api.Health(ctx)
		if err != nil {
			return nil, err
		}
		return &h, nil
	}
	if cfg.Agent.AdminListen == "" {
		return nil, fmt.Errorf("%v, and admin_listen is off", err)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + cfg.Agent.AdminListen + "/healthz")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var h admin.Health
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(&h); err != nil {
		return nil, fmt.Errorf("/healthz: %w", err)
	}
	return &h, nil
}

func (d *doctor) checkPorts(ctx context.Context, cfg *config.Config, health *admin.Health, running bool) {
	d.section = "port"
	for _, rc := range cfg.Readers {
		what := fmt.Sprintf("reader %s port %s", rc.Name, rc.Port)
		if running {
			switch {
			case health == nil:
				d.ok("%s: not opened (the running agent holds it; enable admin_listen to see its state)", what)
			case health.Readers[rc.Name]:
				d.ok("%s: connected in the running agent", what)
			default:
				d.fail(what, errors.New("the running agent cannot open it"), "check the cable and `scanagent ports`; see the agent's log for the reason")
			}
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		var opened string
		err := reader.Monitor(pctx, rc, reader.MonitorOptions{Connected: func(path string) { opened = path; cancel() }}, func(reader.Event) {})
		cancel()
		switch {
		case opened != "":
			d.ok("%s opens (%s)", what, opened)
		case err == nil:
			d.fail(what, errors.New("did not open within 3 s"), "check the cable and `scanagent ports`")
		default:
			f := reader.DiagnosePort(rc.Port, err)
			d.fail(what, fmt.Errorf("%s (%v)", f.Cause, err), f.Fix)
		}
	}
}

func (d *doctor) checkPlatform(ctx context.Context, cfg *config.Config) {
	d.section = "platform"
	u, err := url.Parse(cfg.Platform.BaseURL)
	if err != nil {
		d.fail("platform base_url", err, "set [platform] base_url")
		return
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	req, _ := http.NewRequest(http.MethodPost, u.String(), nil)
	proxied := ""
	if proxy, perr := http.ProxyFromEnvironment(req); perr == nil && proxy != nil {
		d.warn("the platform is reached through the proxy %s (HTTPS_PROXY / HTTP_PROXY; NO_PROXY lists hosts reached directly)", proxy.Redacted())
		host, port = proxy.Hostname(), proxy.Port()
		proxied = proxy.Redacted()
		if port == "" {
			port = map[string]string{"https": "443", "http": "80"}[proxy.Scheme]
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(cctx, host)
	if err != nil {
		fix := upload.FixDNS
		if proxied != "" {
			fix = "the proxy's host name does not resolve: check HTTPS_PROXY / HTTP_PROXY (or list the platform's host in NO_PROXY) and the terminal's DNS server"
		}
		d.fail("DNS "+host, err, fix)
		return
	}
	d.ok("DNS %s → %s", host, strings.Join(addrs, ", "))
	conn, err := (&net.Dialer{}).DialContext(cctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		fix := "a firewall or the campus network blocks it; ask the network team to open it"
		switch {
		case proxied != "":
			fix = upload.FixProxy
		case errors.Is(err, syscall.ECONNREFUSED):
			fix = upload.FixRefused
		}
		d.fail("TCP "+net.JoinHostPort(host, port), err, fix)
		return
	}
	d.ok("TCP %s connects", net.JoinHostPort(host, port))
	if u.Scheme != "https" || host != u.Hostname() {
		conn.Close()
		d.checkHTTP(ctx, cfg, proxied)
		return
	}
	tcfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if cfg.Platform.CAFile != "" {
		pool, _ := x509.SystemCertPool()
		if pool == nil {
			pool = x509.NewCertPool()
		}
		if pem, err := os.ReadFile(cfg.Platform.CAFile); err == nil {
			pool.AppendCertsFromPEM(pem)
		}
		tcfg.RootCAs = pool
	}
	tc := tls.Client(conn, tcfg)
	defer tc.Close()
	if err := tc.HandshakeContext(cctx); err != nil {
		d.fail("TLS "+host, err, upload.Diagnose(err).Fix)
		return
	}
	d.ok("TLS %s verified", host)
	d.checkHTTP(ctx, cfg, proxied)
}

// checkHTTP asks base_url for anything (HEAD) the way the agent connects
// (proxy, ca_file), to see that the platform answers and not a proxy's or
// a portal's page, and to compare its clock (the Date header) with ours.
func (d *doctor) checkHTTP(ctx context.Context, cfg *config.Config, proxied string) {
	d.section = "platform"
	client, err := upload.NewHTTPClient(cfg.Platform.Timeout.Duration, cfg.Platform.CAFile, 1)
	if err != nil {
		d.fail("platform", err, "fix [platform] ca_file")
		return
	}
	hctx, cancel := context.WithTimeout(ctx, cfg.Platform.Timeout.Duration)
	defer cancel()
	req, err := http.NewRequestWithContext(hctx, http.MethodHead, cfg.Platform.BaseURL, nil)
	if err != nil {
		d.fail("platform base_url", err, "set [platform] base_url")
		return
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		f := upload.Diagnose(err)
		d.fail("HTTP "+cfg.Platform.BaseURL, fmt.Errorf("%s (%v)", f.Cause, err), f.Fix)
		return
	}
	resp.Body.Close()
	end := time.Now()
	if proxied != "" && (resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusGatewayTimeout ||
		resp.StatusCode == http.StatusProxyAuthRequired || resp.StatusCode == http.StatusForbidden) {
		d.fail("HTTP "+cfg.Platform.BaseURL, fmt.Errorf("the proxy %s answered %s", proxied, resp.Status), upload.FixProxyPath)
		return
	}
	d.ok("HTTP %s answers (%s)", cfg.Platform.BaseURL, resp.Status)
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		d.warn("clock: the platform's answer carries no Date header to compare the local clock with")
		return
	}
	skew := date.Add(500 * time.Millisecond).Sub(start.Add(end.Sub(start) / 2)).Round(time.Second)
	d.section = "clock"
	if max := cfg.Upload.MaxClockSkew.Duration; skew > max || skew < -max {
		d.fail("clock", fmt.Errorf("%s (max_clock_skew %s): scans would carry wrong dates", upload.SkewText(skew), max), upload.FixClock)
		return
	}
	d.ok("clock within %s of the platform's", upload.Human(skew.Abs()))
}

func (d *doctor) checkToken(ctx context.Context, cfg *config.Config, health *admin.Health, running bool) {
	d.section = "token"
	if running {
		switch {
		case health == nil:
			d.ok("token: not fetched (a new token would invalidate the running agent's)")
		case health.Platform == string(upload.StateReachable):
			d.ok("token: not fetched (it would invalidate the running agent's); the agent reaches the platform")
		case health.Platform == string(upload.StateUnknown):
			d.ok("token: not fetched (it would invalidate the running agent's); the agent has not contacted the platform yet")
		default:
			why, fix := "the running agent cannot upload", "see the agent's log for the reason (network, credentials, platform errors)"
			if pd := health.PlatformDetail; pd != nil && pd.Reason != "" {
				why, fix = pd.Reason, pd.Fix
			}
			d.fail("platform "+health.Platform+" (running agent)", errors.New(why), fix)
		}
		return
	}
	secret, err := cfg.ClientSecret()
	if err != nil {
		d.fail("token", err, "set [platform] client_secret, client_secret_file or SCANAGENT_CLIENT_SECRET")
		return
	}
	q, err := queue.Open(filepath.Join(cfg.Agent.DataDir, queueFile), queue.Options{LockTimeout: time.Second, NoNewJournal: true})
	if err != nil {
		d.fail("token", fmt.Errorf("cannot keep the token: %w", err), "fix the data dir first")
		return
	}
	defer q.Close()
	client, err := upload.NewHTTPClient(cfg.Platform.Timeout.Duration, cfg.Platform.CAFile, 1)
	if err != nil {
		d.fail("token", err, "fix [platform] ca_file")
		return
	}
	red := redact.New(secret)
	base := strings.TrimRight(cfg.Platform.BaseURL, "/")
	ts := upload.NewTokenSource(client, base+cfg.Platform.TokenPath, cfg.Platform.ClientID, secret, q, upload.TokenOptions{Redactor: red})
	tctx, cancel := context.WithTimeout(ctx, cfg.Platform.Timeout.Duration+time.Second)
	defer cancel()
	if old, err := q.LoadToken(); err == nil && old.AccessToken != "" {
		// Check the credentials, not the stored token.
		if tok, err := ts.Token(tctx); err == nil {
			ts.Invalidate(tok)
		}
	}
	if _, err := ts.Token(tctx); err != nil {
		fix := "check base_url and token_path, and the network checks above"
		switch {
		case errors.Is(err, upload.ErrBadCredentials):
			fix = "ask the platform's administrators for the right client_id / client_secret"
		case errors.Is(err, upload.ErrNotToken):
			fix = upload.FixPortal
		case isTransport(err):
			fix = upload.Diagnose(err).Fix
		}
		d.fail("token", errors.New(red.Error(err)), fix)
		return
	}
	d.ok("token obtained from %s%s (kept for the agent)", base, cfg.Platform.TokenPath)
}

// isTransport reports whether err is a request that got no HTTP answer.
func isTransport(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	var ue *url.Error
	return errors.As(err, &op) || errors.As(err, &dns) || errors.As(err, &ue)
}
