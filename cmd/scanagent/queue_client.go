package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"time"

	"scanagent/internal/admin"
	"scanagent/internal/config"
	"scanagent/internal/queue"
)

// errAgentRefused marks a socket this user may not open (data_dir is not
// theirs): the file is out of reach too, so the command stops with this
// message instead of falling back to it.
var errAgentRefused = errors.New("no access to the agent's queue")

// maxAnswer bounds what the CLI reads of one answer of the agent.
const maxAnswer = 64 << 20

// apiStore is the running agent's queue API (internal/admin), reached only
// through the socket data_dir/admin.sock: never over TCP, so nothing the
// command sends can reach another process listening on admin_listen.
type apiStore struct {
	sock   string
	client *http.Client
}

// dialAgent returns the agent's API when /healthz answers on its socket
// within probeTimeout (200 or 503: either way the agent runs).
func dialAgent(ctx context.Context, cfg *config.Config) (*apiStore, error) {
	sock := filepath.Join(cfg.Agent.DataDir, admin.SocketFile)
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	a := &apiStore{sock: sock, client: client}
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(pctx, "GET", "http://scanagent/healthz", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if errors.Is(err, fs.ErrPermission) {
		return nil, fmt.Errorf("%w: %s: permission denied; run this as root or as the agent's user (sudo -u scanagent)",
			errAgentRefused, sock)
	}
	if err != nil {
		return nil, fmt.Errorf("socket %s: %w", sock, unwrapURL(err))
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
		return nil, fmt.Errorf("socket %s: /healthz answered %s: not a scanagent", sock, resp.Status)
	}
	return a, nil
}

// Health reads the agent's /healthz through the socket.
func (a *apiStore) Health(ctx context.Context) (admin.Health, error) {
	var h admin.Health
	req, err := http.NewRequestWithContext(ctx, "GET", "http://scanagent/healthz", nil)
	if err != nil {
		return h, err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return h, unwrapURL(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(&h); err != nil {
		return h, fmt.Errorf("/healthz: %w", err)
	}
	return h, nil
}

// unwrapURL drops the "Get "http://scanagent/healthz":" of a client error.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// call sends one request to the API and decodes the JSON answer into out.
func (a *apiStore) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://scanagent"+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return fmt.Errorf("agent admin API: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var ae admin.APIError
		if json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ae) != nil || ae.Error == "" {
			ae.Error = resp.Status
		}
		if resp.StatusCode == http.StatusNotFound {
			return fmt.Errorf("agent: %s: %w", ae.Error, queue.ErrNotFound)
		}
		return fmt.Errorf("agent: %s", ae.Error)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(out); err != nil {
		return fmt.Errorf("agent admin API: reading the answer (at most %d MiB): %w", maxAnswer>>20, err)
	}
	return nil
}

// stream opens a streaming answer (the tap) and returns its body, to be
// read until ctx ends.
func (a *apiStore) stream(ctx context.Context, path string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://scanagent"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("agent admin API: %w", unwrapURL(err))
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("the running agent has no live view (%s): it is older than this command; upgrade it or stop it and run monitor without --live", resp.Status)
		}
		return nil, fmt.Errorf("agent: %s", resp.Status)
	}
	return resp.Body, nil
}

func (a *apiStore) Stats(ctx context.Context) (queue.Stats, error) {
	var s queue.Stats
	return s, a.call(ctx, "GET", "/api/queue/stats", nil, &s)
}

func (a *apiStore) List(ctx context.Context, s queue.State, after uint64, limit int, withIDCard bool) (admin.RecordsPage, error) {
	v := url.Values{"state": {string(s)}, "limit": {strconv.Itoa(limit)}}
	if after > 0 {
		v.Set("after", strconv.FormatUint(after, 10))
	}
	if withIDCard {
		v.Set("include_idcard", "1")
	}
	var p admin.RecordsPage
	return p, a.call(ctx, "GET", "/api/queue/records?"+v.Encode(), nil, &p)
}

func (a *apiStore) Get(ctx context.Context, id queue.Ref) (queue.Item, error) {
	var it queue.Item
	return it, a.call(ctx, "GET", "/api/queue/records/"+id.String(), nil, &it)
}

func (a *apiStore) Retry(ctx context.Context, id queue.Ref) (int, error) {
	var r admin.Retried
	return r.Retried, a.call(ctx, "POST", "/api/queue/records/"+id.String()+"/retry", nil, &r)
}

func (a *apiStore) RetryDead(ctx context.Context) (queue.Retried, error) {
	var r queue.Retried
	return r, a.call(ctx, "POST", "/api/queue/retry-dead", nil, &r)
}

func (a *apiStore) Drop(ctx context.Context, id queue.Ref) (queue.State, error) {
	var d admin.Dropped
	return d.State, a.call(ctx, "DELETE", "/api/queue/records/"+id.String(), nil, &d)
}

func (a *apiStore) Salvage(ctx context.Context, file string) (queue.Salvaged, error) {
	var r queue.Salvaged
	return r, a.call(ctx, "POST", "/api/queue/salvage", admin.SalvageRequest{File: file}, &r)
}

func (a *apiStore) Where() string { return "the running agent's queue" }
func (a *apiStore) Close() error  { a.client.CloseIdleConnections(); return nil }
