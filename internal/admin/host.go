package admin

import (
	"net"
	"net/http"
	"strings"
)

// loopbackHostOnly refuses a request whose Host header names anything but
// this machine (localhost, a loopback IP). A listener on a loopback address
// is reachable from a browser on the same machine; a web page whose name an
// attacker makes resolve to 127.0.0.1 (DNS rebinding) sends its own name as
// Host and is refused.
func loopbackHostOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isLoopbackHost(r.Host) {
			writeJSON(w, http.StatusMisdirectedRequest, APIError{"this endpoint answers only requests to localhost or a loopback address"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// isLoopbackHost reports whether a Host header (with or without a port)
// names this machine: localhost or a loopback IP. An empty Host (HTTP/1.0) is accepted: browsers always send one.
func isLoopbackHost(host string) bool {
	if host == "" {
		return true
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
