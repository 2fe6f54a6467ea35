package devserver

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
)

// Proxy is a forward HTTP proxy for the proxy fault tests: what a campus
// network's HTTPS_PROXY / HTTP_PROXY would be. It forwards plain requests
// (absolute-form) and tunnels CONNECT, to Target when set (so a made-up
// host name reaches a local devserver), else to the host asked for. With
// Refuse set it answers 502 to everything, as a proxy that cannot (or may
// not) reach the platform.
type Proxy struct {
	Target *url.URL // nil = the host asked for
	Refuse atomic.Bool
	Calls  atomic.Int64
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.Calls.Add(1)
	if p.Refuse.Load() {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "<html><body><h1>502 Bad Gateway</h1><p>The proxy could not connect to "+htmlEscape(r.Host)+"</p></body></html>\n")
		return
	}
	host := r.Host
	if p.Target != nil {
		host = p.Target.Host
	}
	if r.Method == http.MethodConnect {
		up, err := net.Dial("tcp", host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		hj, ok := w.(http.Hijacker)
		if !ok {
			up.Close()
			http.Error(w, "no hijack", http.StatusInternalServerError)
			return
		}
		conn, _, err := hj.Hijack()
		if err != nil {
			up.Close()
			return
		}
		io.WriteString(conn, "HTTP/1.1 200 Connection established\r\n\r\n")
		go func() { io.Copy(up, conn); up.Close() }()
		io.Copy(conn, up)
		conn.Close()
		return
	}
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Host = host
	if out.URL.Scheme == "" {
		out.URL.Scheme = "http"
	}
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

func htmlEscape(s string) string {
	var b []byte
	for _, c := range []byte(s) {
		switch c {
		case '<', '>', '&', '"', '\'':
			b = append(b, '?')
		default:
			b = append(b, c)
		}
	}
	return string(b)
}
