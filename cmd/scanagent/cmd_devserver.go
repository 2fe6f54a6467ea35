package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"scanagent/internal/devserver"
)

// devserverCmd runs the local emulation of the platform's two endpoints.
type devserverCmd struct{}

func (c *devserverCmd) Run(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("devserver")
	listen := fs.String("listen", "127.0.0.1:8088", "address to listen on")
	appID := fs.String("app-id", "01", "the app id records must carry (and the idCard key)")
	clientID := fs.String("client-id", "demo-client", "client_id the token endpoint accepts")
	clientSecret := fs.String("client-secret", "demo-secret", "client_secret the token endpoint accepts")
	ttl := fs.Duration("token-ttl", 14*24*time.Hour, "lifetime of an issued token")
	fail := fs.Float64("fail", 0, "share of scan calls (0 to 1) answered 503")
	latency := fs.Duration("latency", 0, "delay added to every scan call")
	logPath := fs.String("log", "", "append accepted records to FILE as JSON lines (ID numbers masked)")
	dateShift := fs.Duration("date-shift", 0, "move the Date header of every answer by this much (a platform, or a terminal, with a wrong clock)")
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	if *fail < 0 || *fail > 1 {
		return usagef("devserver: --fail must be between 0 and 1")
	}
	var recLog io.Writer
	if *logPath != "" {
		f, err := os.OpenFile(*logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		recLog = f
	}
	srv, err := devserver.New(devserver.Options{
		AppID: *appID, ClientID: *clientID, ClientSecret: *clientSecret, TokenTTL: *ttl,
		FailRate: *fail, Latency: *latency, Log: recLog, DateShift: *dateShift,
		Logger: slog.New(slog.NewTextHandler(e.stderr, nil)),
	})
	if err != nil {
		return usagef("devserver: %v", err)
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "devserver listening on http://%s (app id %s, client id %s)\n"+
		"  set [platform] base_url = \"http://%s\"\n"+
		"  switch faults: curl -X POST 'http://%s%s?m=down'   (ok, down, 503, html, redirect, slow, expire-token, 404)\n"+
		"  alerts it took (msgsend): curl 'http://%s%s'\n",
		ln.Addr(), *appID, *clientID, ln.Addr(), ln.Addr(), devserver.ModeCtlPath, ln.Addr(), devserver.MessagesCtlPath)
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
