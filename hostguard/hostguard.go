// Package hostguard decides which requests reach the portal's internal
// server, and cleans the requests its public front passes on.
//
// The internal server (127.0.0.1:<internal port> of the Instance Portal
// entry) has no authentication: it is reached through the entry's external
// port, behind vastauth, or through an SSH port forward. Binding to
// 127.0.0.1 does not keep browsers out: under DNS rebinding a page from
// rebind.evil, whose name now resolves to 127.0.0.1, is same-origin with
// the server, may send any header it likes, and could create tunnels or
// read logs (issue 14). What such a page cannot choose is its Host header,
// which names the attacker's domain. So the internal server answers only
//   - a Host naming the loopback interface (localhost, 127.0.0.1, [::1]):
//     an SSH forward, or a local process;
//   - a request our own front forwarded after authenticating it, which
//     carries this process's random front secret in FrontHeader.
//
// The secret is made at process start, never written to the Caddy config,
// a file or a log of ours, and compared in constant time. The front
// deletes any FrontHeader a client sent before it sets its own.
//
// It imports nothing of Caddy; caddymodules embeds the Configs below in
// the handlers http.handlers.portal_front and
// http.handlers.portal_internal_guard.
package hostguard

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"

	"github.com/instanceportal/portal/confdecl"
)

// FrontHeader carries the front secret from the portal entry's front to
// the internal server.
const FrontHeader = "X-Portal-Front"

// secret is this process's front secret: 32 random bytes, hex.
var secret = sync.OnceValue(func() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
})

// Secret returns this process's front secret. Only the front handler puts
// it in a request; nothing writes it anywhere else.
func Secret() string { return secret() }

// FromFront reports, in constant time, whether v is this process's front
// secret.
func FromFront(v string) bool {
	return v != "" && subtle.ConstantTimeCompare([]byte(v), []byte(secret())) == 1
}

// Config is the internal server's guard (http.handlers.portal_internal_guard).
type Config struct {
	// Hosts are the host names, without a port, that the internal server
	// answers whatever the port: the names of the loopback interface,
	// which an SSH forward (`-L 11111:localhost:11111`, or any local
	// port) and local processes use. Every other Host is refused with 403
	// unless the request carries the front's secret. Default:
	// ["localhost","127.0.0.1","::1"].
	Hosts []string `json:"hosts,omitempty"`
}

// Default is the guard the portal runs with.
func Default() Config {
	return Config{Hosts: []string{"localhost", "127.0.0.1", "::1"}}
}

// Check refuses host patterns: each entry must be one exact host name
// or address, without a port.
// (Not named Validate: a Caddy module embedding Config would then be a
// caddy.Validator by accident.)
func (c Config) Check() error {
	var ck confdecl.Check
	for _, h := range c.Hosts {
		if h == "" || strings.ContainsAny(h, "*/ :[]") && !isIPv6(h) {
			ck.Failf("hosts", "%q: want a host name or an address without a port (no patterns)", h)
		}
	}
	return ck.Err()
}

func isIPv6(h string) bool {
	a, err := netip.ParseAddr(strings.Trim(h, "[]"))
	return err == nil && a.Is6()
}

// HostAllowed reports whether the Host header host (name or name:port,
// IPv6 in brackets) names one of hosts, case-insensitively and ignoring a
// final dot. The port is not checked: a page's Host always names the site
// it was loaded from, so the name is what tells a rebinding page
// ("rebind.evil:11111") from an SSH forward ("localhost:9000").
func HostAllowed(host string, hosts []string) bool {
	name := hostName(host)
	if name == "" {
		return false
	}
	for _, h := range hosts {
		if strings.EqualFold(name, strings.TrimSuffix(strings.Trim(h, "[]"), ".")) {
			return true
		}
	}
	return false
}

// hostName is host without its port and brackets; "" when malformed.
func hostName(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	} else if strings.Contains(host, ":") && !isIPv6(host) {
		return "" // "a:b:c" that is neither host:port nor an address
	}
	return strings.TrimSuffix(host, ".")
}

// FrontConfig is the front handler (http.handlers.portal_front), placed
// just before the proxy of every app port.
type FrontConfig struct {
	// MarkInternal is set on the Instance Portal entry's front, whose
	// upstream is the internal server: each request it forwards, having
	// passed vastauth, carries the front secret. Default: false.
	MarkInternal bool `json:"mark_internal,omitempty"`
	// HoldHeaderFlush lets a flush that would send a known-length
	// response's headers on their own wait for its first body bytes
	// (package headerflush). The adapter sets it where reverse_proxy
	// flushes at once and no encode handler already does the same: one
	// write per small response instead of two. Default: false.
	HoldHeaderFlush bool `json:"hold_header_flush,omitempty"`
}

// cloudflaredHeaders are set by our own cloudflared, which connects from
// loopback. From any other peer they are forgeries: Cf-Visitor would make
// the app believe the visitor used https, Cf-Connecting-Ip would name any
// client address the sender liked. (Canonical forms: the server's request
// headers are canonical, so plain map deletes suffice.)
var cloudflaredHeaders = []string{"Cf-Visitor", "Cf-Connecting-Ip"}

// PrepareFront cleans a request the front is about to proxy: a client's
// FrontHeader is dropped (and the secret set when mark), an h2c upgrade is
// dropped (h2c over a proxied connection would tunnel HTTP/2 requests past
// everything the front checks), and the Cloudflare headers are dropped
// unless the peer (remoteAddr, "ip:port") is loopback: our cloudflared.
// X-Real-Ip is set to the peer's address, as the reference's
// `header_up X-Real-IP {remote_host}` did; here rather than as a header op
// of the proxy, where the placeholder costs 0.3 µs and 3 allocations a
// request (BenchmarkRealIP in caddymodules).
// It runs on every proxied request, so it does no work a request does not
// call for.
func PrepareFront(h http.Header, remoteAddr string, mark bool) {
	h["X-Real-Ip"] = []string{peerHost(remoteAddr)}
	delete(h, FrontHeader)
	if mark {
		h[FrontHeader] = []string{secret()}
	}
	if _, ok := h["Upgrade"]; ok {
		dropH2C(h)
	} else {
		delete(h, "Http2-Settings")
	}
	for _, k := range cloudflaredHeaders {
		if _, ok := h[k]; ok {
			if !peerLoopback(remoteAddr) {
				for _, k := range cloudflaredHeaders {
					delete(h, k)
				}
			}
			break
		}
	}
}

// dropH2C removes the h2c protocol from an Upgrade header (deleting the
// header when nothing else is left) and the HTTP2-Settings header that
// goes with it. WebSocket upgrades pass untouched.
func dropH2C(h http.Header) {
	delete(h, "Http2-Settings")
	vals, ok := h["Upgrade"]
	if !ok {
		return
	}
	var keep []string
	changed := false
	for _, v := range vals {
		var protos []string
		for _, p := range strings.Split(v, ",") {
			p = strings.TrimSpace(p)
			name, _, _ := strings.Cut(p, "/")
			if strings.EqualFold(name, "h2c") {
				changed = true
				continue
			}
			if p != "" {
				protos = append(protos, p)
			}
		}
		if len(protos) > 0 {
			keep = append(keep, strings.Join(protos, ", "))
		}
	}
	if !changed {
		return
	}
	if len(keep) == 0 {
		delete(h, "Upgrade")
		return
	}
	h["Upgrade"] = keep
}

// peerHost is the host part of "host:port" (all of it when there is no
// port), as Caddy's {http.request.remote.host} gives it.
func peerHost(remoteAddr string) string {
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		return host
	}
	return remoteAddr
}

// peerLoopback reports whether remoteAddr (an http.Request's RemoteAddr,
// "ip:port") is a loopback address.
func peerLoopback(remoteAddr string) bool {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	return ap.Addr().Unmap().IsLoopback()
}
