package vastauth

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// viaOurTunnel reports whether r came through cloudflared running on this
// machine: the connection is from a loopback address and carries Cf-Ray,
// which Cloudflare's edge adds to every request it forwards. Headers of a
// request from any other peer are whatever the client chose to send, so
// they are never trusted. (A local process can forge them, but it is
// already inside the instance.)
func viaOurTunnel(r *http.Request) bool {
	peer, ok := peerAddr(r)
	return ok && peer.IsLoopback() && r.Header.Get("Cf-Ray") != ""
}

// ClientAddr is the address the failure limiter counts a request under:
// the connection's peer, or, for a request that came through our own
// cloudflared (viaOurTunnel), the visitor's address from Cf-Connecting-IP,
// so that visitors of a tunnel are counted apart instead of all sharing
// 127.0.0.1. A forwarding header from any other peer (X-Forwarded-For,
// Cf-Connecting-IP) is ignored. The zero Addr means "unknown" (a unix
// socket): all such clients share one counter.
func ClientAddr(r *http.Request) netip.Addr {
	peer, ok := peerAddr(r)
	if !ok {
		return netip.Addr{}
	}
	if peer.IsLoopback() && r.Header.Get("Cf-Ray") != "" {
		if v, err := netip.ParseAddr(strings.TrimSpace(r.Header.Get("Cf-Connecting-IP"))); err == nil {
			return v.Unmap().WithZone("")
		}
	}
	return peer
}

func peerAddr(r *http.Request) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

// BrowserUsedHTTPS reports whether the browser reached us over https: the
// connection is TLS, or the request came through our own cloudflared with
// Cf-Visitor saying https (the tunnel speaks plain HTTP to us).
func BrowserUsedHTTPS(r *http.Request) bool {
	return r.TLS != nil || (viaOurTunnel(r) && strings.Contains(strings.ReplaceAll(r.Header.Get("Cf-Visitor"), " ", ""), `"scheme":"https"`))
}

// RequestOrigin is the origin the browser sent r to: its scheme
// (BrowserUsedHTTPS) and the Host header, normalised as normalizeOrigin
// does ("" when Host is unusable).
func RequestOrigin(r *http.Request) string {
	scheme := "http"
	if BrowserUsedHTTPS(r) {
		scheme = "https"
	}
	o, err := normalizeOrigin(scheme + "://" + r.Host)
	if err != nil {
		return ""
	}
	return o
}

// CrossSiteRefusal is the one cross-site policy of every state-changing
// endpoint (POST /api/handoff, POST /.portal/logout, the processes and
// tunnels APIs): it says why a request must be refused as coming from
// another page than our own, or "" to let it through. Browsers name the
// initiator in Sec-Fetch-Site: only same-origin passes, since every app of
// the instance is the same site on another port. An Origin must name this
// very host, and without an Origin, a Referer must (issue 20: a foreign Referer alone got
// through). A request with none of them is not from a browser page (curl
// with the secret), which a page cannot make a browser send.
func CrossSiteRefusal(r *http.Request) string {
	const refused = "cross-site request refused"
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "", "same-origin":
	default:
		return fmt.Sprintf("%s (Sec-Fetch-Site: %s)", refused, clip(site, 32))
	}
	origin := r.Header.Get("Origin")
	if origin == "null" && r.Header.Get("Sec-Fetch-Site") == "same-origin" {
		// A form POST from one of our pages, which all carry
		// Referrer-Policy: no-referrer: the browser then sends Origin:
		// null (Fetch, "serializing a request origin"), and says in
		// Sec-Fetch-Site, which no page can set, that it is same-origin.
		return ""
	}
	if origin != "" {
		if u, err := url.Parse(origin); err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
			return fmt.Sprintf("%s (Origin %s is not this portal)", refused, clip(origin, 100))
		}
		return ""
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		if u, err := url.Parse(ref); err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
			return fmt.Sprintf("%s (Referer is not this portal)", refused)
		}
	}
	return ""
}

// clip shortens s to at most n bytes for a message.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
