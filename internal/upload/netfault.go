package upload

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
)

// Fault is a named cause of a failed call to the platform and what to do
// about it, for the log, /healthz and doctor.
type Fault struct {
	Cause string // e.g. "DNS lookup failed"
	Fix   string
}

// Fixes of network faults; doctor uses the same words.
const (
	FixDNS       = "the platform's host name does not resolve: check the terminal's DNS server (and the host in [platform] base_url)"
	FixRefused   = "nothing listens there: check the host and port of [platform] base_url (and HTTPS_PROXY / NO_PROXY if a proxy is used)"
	FixProxy     = "the proxy named by HTTPS_PROXY / HTTP_PROXY does not answer: fix or unset that variable for the service, or list the platform's host in NO_PROXY to reach it directly"
	FixProxyPath = "the proxy (HTTPS_PROXY / HTTP_PROXY) refused to reach the platform: ask for the platform's host to be allowed, or list it in NO_PROXY to reach it directly"
	FixCA        = "the platform's certificate is signed by a CA this terminal does not trust (an intranet CA): set [platform] ca_file to that CA's PEM file"
	FixCertClock = "the platform's certificate is not valid at this terminal's time: check the clock (enable time sync: timedatectl set-ntp true, or set the time)"
	FixCertName  = "the platform's certificate is for another name: check the host in [platform] base_url"
	FixTimeout   = "no answer within [platform] timeout: a firewall may drop the traffic, or the platform is overloaded; ask the network team, or raise timeout"
	FixNetwork   = "check the terminal's network cable and the route to the platform; a firewall may block it"
	FixClock     = "enable time sync (Linux: timedatectl set-ntp true; Windows: w32tm /resync) or set the time by hand"
)

// Diagnose names the cause of a transport error (the request got no HTTP
// answer) and its fix.
func Diagnose(err error) Fault {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	var unknownCA x509.UnknownAuthorityError
	var certInvalid x509.CertificateInvalidError
	var hostErr x509.HostnameError
	var recordErr tls.RecordHeaderError
	msg := err.Error()
	switch {
	case errors.As(err, &opErr) && opErr.Op == "proxyconnect", strings.Contains(msg, "proxyconnect"):
		return Fault{"the proxy does not answer", FixProxy}
	case strings.Contains(msg, "Proxy Authentication Required"), strings.Contains(msg, "Bad Gateway") && strings.Contains(msg, "proxy"),
		strings.Contains(msg, "proxy") && strings.Contains(msg, "Forbidden"):
		return Fault{"the proxy refused the connection to the platform", FixProxyPath}
	case errors.As(err, &dnsErr):
		return Fault{"DNS lookup failed", FixDNS}
	case errors.As(err, &unknownCA):
		return Fault{"certificate signed by an unknown CA", FixCA}
	case errors.As(err, &certInvalid) && certInvalid.Reason == x509.Expired:
		return Fault{"certificate expired or not yet valid at this terminal's time", FixCertClock}
	case errors.As(err, &hostErr):
		return Fault{"certificate for another host", FixCertName}
	case errors.As(err, &recordErr):
		return Fault{"not TLS: an https URL on a plain HTTP port", "use http:// in [platform] base_url, or the platform's TLS port"}
	case errors.Is(err, syscall.ECONNREFUSED):
		return Fault{"connection refused", FixRefused}
	case errors.Is(err, os.ErrDeadlineExceeded), isTimeout(err):
		return Fault{"timed out", FixTimeout}
	case errors.Is(err, syscall.ECONNRESET), strings.Contains(msg, "EOF"):
		return Fault{"connection closed without an answer", "the platform or something in between (a proxy, a firewall) dropped the connection; it is retried"}
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return Fault{"network unreachable", FixNetwork}
	}
	return Fault{"network error", FixNetwork}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// ProxyFor returns the proxy client uses for target (from HTTPS_PROXY /
// HTTP_PROXY / NO_PROXY), its password hidden; "" when none.
func ProxyFor(client *http.Client, target string) string {
	if client == nil {
		return ""
	}
	tr, ok := client.Transport.(*http.Transport)
	if !ok || tr.Proxy == nil {
		return ""
	}
	req, err := http.NewRequest(http.MethodPost, target, nil)
	if err != nil {
		return ""
	}
	u, err := tr.Proxy(req)
	if err != nil || u == nil {
		return ""
	}
	return u.Redacted()
}

// netError is a transport error with its text redacted, still unwrapping
// to the original for Diagnose.
type netError struct {
	msg string
	err error
}

func (e *netError) Error() string { return e.msg }
func (e *netError) Unwrap() error { return e.err }
