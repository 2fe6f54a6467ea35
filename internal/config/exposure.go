package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// exposureWarnings are network settings that work but expose something: a
// platform reached over cleartext HTTP on another machine (the access token
// and every scan cross the network readable), and an admin_listen others
// can reach (/healthz and /metrics carry no personal data, and fleets
// scrape them, so it is allowed and only noted).
func (c *Config) exposureWarnings() []string {
	var w []string
	if u, err := url.Parse(c.Platform.BaseURL); err == nil && u.Scheme == "http" && u.Host != "" && !loopbackHost(u.Hostname()) {
		w = append(w, fmt.Sprintf("[platform] base_url %s is cleartext http:// to another machine: the access token and every scan cross the network readable; "+
			"use https://%s (and ca_file if its certificate comes from an intranet CA)", c.Platform.BaseURL, strings.TrimPrefix(c.Platform.BaseURL, "http://")))
	}
	if a := c.Agent.AdminListen; a != "" {
		if host, _, err := net.SplitHostPort(a); err == nil && !loopbackHost(host) {
			w = append(w, fmt.Sprintf("[agent] admin_listen %q can be reached from other machines: /healthz and /metrics (no personal data) answer anyone who can connect; "+
				"keep it only for a metrics scraper and firewall the port, else use \"127.0.0.1:9465\"", a))
		}
	}
	return w
}

// loopbackHost reports whether host (a name or an IP, no port) is this
// machine only: localhost or a loopback IP. "" and 0.0.0.0 mean every
// interface.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
