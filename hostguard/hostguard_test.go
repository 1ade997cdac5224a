package hostguard

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestHostAllowed(t *testing.T) {
	hosts := Default().Hosts
	for host, want := range map[string]bool{
		"localhost:11111":      true,
		"localhost":            true,
		"LOCALHOST:9000":       true, // an SSH forward to another local port
		"localhost.:11111":     true,
		"127.0.0.1:11111":      true,
		"[::1]:11111":          true,
		"[::1]":                true,
		"rebind.evil:11111":    false, // DNS rebinding: the page's own name
		"localhost.evil:11111": false,
		"evil.localhost:11111": false,
		"127.0.0.2:11111":      false,
		"127.1:11111":          false,
		"0.0.0.0:11111":        false,
		"[::ffff:127.0.0.1]:1": false,
		"":                     false,
		"localhost:1:2":        false,
		"::1":                  true, // a bare IPv6 address (no port)
		"[localhost]:80":       true, // SplitHostPort strips brackets; harmless
		"localhost@evil:80":    false,
		"localhost%00:80":      false,
	} {
		if got := HostAllowed(host, hosts); got != want {
			t.Errorf("HostAllowed(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		hosts []string
		want  string // "" = valid
	}{
		{Default().Hosts, ""},
		{[]string{"[::1]", "myhost"}, ""},
		{[]string{"*.example.com"}, `hosts: "*.example.com": want a host name or an address without a port (no patterns)`},
		{[]string{"localhost:11111"}, `hosts: "localhost:11111"`},
		{[]string{""}, `hosts: ""`},
	} {
		err := Config{Hosts: c.hosts}.Check()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v", c.hosts, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q: error %v, want %q", c.hosts, err, c.want)
		}
	}
}

func TestFromFront(t *testing.T) {
	s := Secret()
	if len(s) != 64 || Secret() != s {
		t.Fatalf("secret %q: want 64 hex characters, the same on every call", s)
	}
	for v, want := range map[string]bool{s: true, "": false, s[:63]: false, s + "0": false, strings.ToUpper(s): s == strings.ToUpper(s)} {
		if FromFront(v) != want {
			t.Errorf("FromFront(%.10q…) = %v, want %v", v, !want, want)
		}
	}
}

func TestPrepareFront(t *testing.T) {
	for _, c := range []struct {
		name           string
		in             http.Header
		loopback, mark bool
		want           http.Header
	}{
		{
			name: "a client's mark is dropped; the front's own set",
			in:   http.Header{"X-Portal-Front": {"guess"}, "Accept": {"*/*"}},
			mark: true,
			want: http.Header{"X-Portal-Front": {Secret()}, "Accept": {"*/*"}},
		},
		{
			name: "not the portal's front: no mark at all",
			in:   http.Header{"X-Portal-Front": {Secret()}},
			want: http.Header{},
		},
		{
			name: "h2c upgrade and its settings dropped",
			in:   http.Header{"Upgrade": {"h2c"}, "Http2-Settings": {"AAMAAABkAAQAAP__"}, "Connection": {"Upgrade, HTTP2-Settings"}},
			want: http.Header{"Connection": {"Upgrade, HTTP2-Settings"}},
		},
		{
			name: "h2c among others: only h2c goes",
			in:   http.Header{"Upgrade": {"H2C, websocket"}},
			want: http.Header{"Upgrade": {"websocket"}},
		},
		{
			name: "WebSocket upgrade untouched",
			in:   http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}},
			want: http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}},
		},
		{
			name: "Cloudflare headers from a remote peer are forgeries",
			in:   http.Header{"Cf-Visitor": {`{"scheme":"https"}`}, "Cf-Connecting-Ip": {"198.51.100.1"}, "Cf-Ray": {"x"}},
			want: http.Header{"Cf-Ray": {"x"}},
		},
		{
			name:     "Cloudflare headers from loopback (our cloudflared) pass",
			in:       http.Header{"Cf-Visitor": {`{"scheme":"https"}`}, "Cf-Connecting-Ip": {"198.51.100.1"}},
			loopback: true,
			want:     http.Header{"Cf-Visitor": {`{"scheme":"https"}`}, "Cf-Connecting-Ip": {"198.51.100.1"}},
		},
		{
			name: "a client's X-Real-Ip is replaced by its address",
			in:   http.Header{"X-Real-Ip": {"10.0.0.1"}},
			want: http.Header{},
		},
	} {
		remote, host := "198.51.100.9:5000", "198.51.100.9"
		if c.loopback {
			remote, host = "127.0.0.1:5000", "127.0.0.1"
		}
		c.want["X-Real-Ip"] = []string{host} // always the peer
		PrepareFront(c.in, remote, c.mark)
		if !reflect.DeepEqual(c.in, c.want) {
			t.Errorf("%s:\n got %v\nwant %v", c.name, c.in, c.want)
		}
	}
}

func TestPeerHost(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:5000": "127.0.0.1", "[::1]:80": "::1", "198.51.100.9:1": "198.51.100.9",
		"no-port": "no-port", "@": "@", "": "",
	} {
		if got := peerHost(addr); got != want {
			t.Errorf("peerHost(%q) = %q, want %q", addr, got, want)
		}
	}
}

func TestPeerLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:5000": true, "127.9.9.9:1": true, "[::1]:80": true, "[::ffff:127.0.0.1]:80": true,
		"192.0.2.1:5000": false, "[2001:db8::1]:80": false, "127.0.0.1": false, "": false,
	} {
		if got := peerLoopback(addr); got != want {
			t.Errorf("peerLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// FuzzHostAllowed: only Hosts whose name is exactly a loopback name pass,
// and adding a port to an allowed name keeps it allowed.
func FuzzHostAllowed(f *testing.F) {
	for _, s := range []string{"localhost:11111", "rebind.evil:11111", "[::1]:1", "127.0.0.1", "a:b:c", "[", "localhost."} {
		f.Add(s)
	}
	hosts := Default().Hosts
	f.Fuzz(func(t *testing.T, host string) {
		if !HostAllowed(host, hosts) {
			return
		}
		name := strings.ToLower(strings.TrimSuffix(hostName(host), "."))
		if name != "localhost" && name != "127.0.0.1" && name != "::1" {
			t.Fatalf("%q allowed with name %q", host, name)
		}
		withPort := host
		if !strings.Contains(strings.TrimPrefix(host, "[::1]"), ":") && host != "::1" {
			withPort = host + ":8080"
		}
		if !HostAllowed(withPort, hosts) {
			t.Fatalf("%q allowed but %q is not", host, withPort)
		}
	})
}

// FuzzDropH2C: after dropH2C no Upgrade value names h2c, and every other
// protocol offered is still there.
func FuzzDropH2C(f *testing.F) {
	for _, s := range []string{"h2c", "websocket", "h2c, websocket", "H2C/1.0", ",,", "websocket/13, h2c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, upgrade string) {
		h := http.Header{"Upgrade": {upgrade}}
		dropH2C(h)
		var others int
		for _, p := range strings.Split(upgrade, ",") {
			name, _, _ := strings.Cut(strings.TrimSpace(p), "/")
			if strings.TrimSpace(p) != "" && !strings.EqualFold(name, "h2c") {
				others++
			}
		}
		var left int
		for _, v := range h.Values("Upgrade") {
			for _, p := range strings.Split(v, ",") {
				name, _, _ := strings.Cut(strings.TrimSpace(p), "/")
				if strings.EqualFold(name, "h2c") {
					t.Fatalf("%q: h2c left in %q", upgrade, h.Values("Upgrade"))
				}
				if strings.TrimSpace(p) != "" {
					left++
				}
			}
		}
		if strings.Contains(strings.ToLower(upgrade), "h2c") && left != others {
			t.Fatalf("%q: %d other protocols offered, %d left: %q", upgrade, others, left, h.Values("Upgrade"))
		}
	})
}

// BenchmarkPrepareFront is the front handler's work on each proxied
// request, with the headers of a typical browser request.
func BenchmarkPrepareFront(b *testing.B) {
	h := http.Header{"Accept": {"text/html"}, "Accept-Encoding": {"gzip"}, "Cookie": {"C.1_auth_token=x"}, "User-Agent": {"Mozilla/5.0"}}
	b.ReportAllocs()
	for b.Loop() {
		PrepareFront(h, "198.51.100.9:5000", true)
	}
}
