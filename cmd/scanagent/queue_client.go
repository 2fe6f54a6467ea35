package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// errAgentRefused marks an agent that answers but cannot be used (its token
// is unreadable or refused): falling back to the file would only say
// "locked", so the command stops with this message instead.
var errAgentRefused = errors.New("the running agent refused the queue command")

// apiStore is the running agent's queue API (internal/admin).
type apiStore struct {
	base   string // http://host:port
	token  string
	client *http.Client
}

// dialAgent returns the agent's API when /healthz answers within
// probeTimeout (200 or 503: either way the agent runs).
func dialAgent(ctx context.Context, cfg *config.Config) (*apiStore, error) {
	base := "http://" + loopback(cfg.Agent.AdminListen)
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(pctx, "GET", base+"/healthz", nil)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
		return nil, fmt.Errorf("%s/healthz answered %s: not a scanagent", base, resp.Status)
	}
	tokenPath := filepath.Join(cfg.Agent.DataDir, admin.TokenFile)
	token, err := admin.ReadToken(tokenPath)
	if err != nil {
		return nil, fmt.Errorf("%w: the agent runs (admin API at %s) but %v; run this as root or as the agent's user (sudo -u scanagent)",
			errAgentRefused, cfg.Agent.AdminListen, err)
	}
	return &apiStore{base: base, token: token, client: client}, nil
}

// loopback turns a listen address into one to connect to: an unspecified
// host ("", 0.0.0.0, ::) means this machine.
func loopback(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
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
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return fmt.Errorf("agent admin API: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("%w: the agent does not accept data_dir/%s (was it replaced while the agent runs? restart the agent)", errAgentRefused, admin.TokenFile)
	}
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
	return json.NewDecoder(resp.Body).Decode(out)
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
