package caddymodules

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"

	"github.com/instanceportal/portal/hostguard"
)

// BenchmarkRealIP compares the two ways of setting X-Real-Ip on every
// proxied request: the front handler's direct set (what the adapter emits)
// and the proxy header op with Caddy's {http.request.remote.host}
// placeholder (what it emitted before). Both also carry the static Host
// set every app route has.
func BenchmarkRealIP(b *testing.B) {
	newRequest := func() *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "198.51.100.7:5555"
		return caddyhttp.PrepareRequest(r, caddy.NewReplacer(), nil, nil)
	}
	hostOnly := &headers.HeaderOps{Set: http.Header{"Host": {"localhost:19001"}}}
	withPlaceholder := &headers.HeaderOps{Set: http.Header{"Host": {"localhost:19001"}, "X-Real-Ip": {"{http.request.remote.host}"}}}
	for _, ops := range []*headers.HeaderOps{hostOnly, withPlaceholder} {
		if err := ops.Provision(caddy.Context{}); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range []struct {
		name string
		ops  *headers.HeaderOps
	}{{"front_handler", hostOnly}, {"placeholder_header_op", withPlaceholder}} {
		b.Run(c.name, func(b *testing.B) {
			r := newRequest()
			b.ReportAllocs()
			for b.Loop() {
				hostguard.PrepareFront(r.Header, r.RemoteAddr, false)
				c.ops.ApplyToRequest(r)
			}
			if got := r.Header.Get("X-Real-Ip"); got != "198.51.100.7" {
				b.Fatalf("X-Real-Ip %q", got)
			}
		})
	}
}
