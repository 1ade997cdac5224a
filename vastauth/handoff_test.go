package vastauth

import (
	"crypto/tls"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func newHandoffAuth(t testing.TB, salt []byte, ledger *HandoffLedger) *Authenticator {
	t.Helper()
	if ledger == nil {
		var err error
		if ledger, err = NewHandoffLedger(); err != nil {
			t.Fatal(err)
		}
	}
	a, err := New(Params{Username: "vastai", Secrets: []string{testToken}, Salt: salt, Handoffs: ledger})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Issue 10: a handoff token works once, for 60 s, on the origin it was
// issued for, in the process that issued it.
func TestHandoffToken(t *testing.T) {
	ledger, _ := NewHandoffLedger()
	a := newHandoffAuth(t, testSalt, ledger)
	const origin = "https://abc-def.trycloudflare.com"
	issue := func() string {
		tok, err := a.IssueHandoff(origin, "", t0)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	redeem := func(a *Authenticator, tok, at string, when time.Time) Result {
		return a.Check(Credentials{Handoff: tok, HasHandoff: true, Origin: at}, when)
	}
	tok := issue()
	if len(tok) > 128 || strings.Trim(tok, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" {
		t.Errorf("token %q is not URL-safe or too long", tok)
	}
	if strings.Contains(tok, testToken) {
		t.Fatal("the token holds the secret")
	}
	r := redeem(a, tok, origin, t0.Add(59*time.Second))
	if r.Verdict != Accepted || !r.IssueSession() || r.HandoffErr != nil {
		t.Fatalf("first redemption: %+v", r)
	}
	// A replay, on this Authenticator or another sharing the ledger (every
	// port of the instance, a reloaded config).
	sibling := newHandoffAuth(t, testSalt, ledger)
	for _, x := range []*Authenticator{a, sibling} {
		if r := redeem(x, tok, origin, t0.Add(time.Second)); r.Verdict != Rejected || !errors.Is(r.HandoffErr, ErrHandoffReplayed) {
			t.Errorf("replay: %+v", r)
		}
	}
	for _, tt := range []struct {
		name   string
		at     string
		when   time.Time
		by     *Authenticator
		reason error
	}{
		{"expired", origin, t0.Add(HandoffTTL), a, ErrHandoffExpired},
		{"foreign origin", "https://evil.example", t0, a, ErrHandoffMalformed},
		{"same host over http", "http://abc-def.trycloudflare.com", t0, a, ErrHandoffMalformed},
		{"other port", "https://abc-def.trycloudflare.com:8443", t0, a, ErrHandoffMalformed},
		{"no origin", "", t0, a, ErrHandoffMalformed},
		{"another instance", origin, t0, newHandoffAuth(t, []byte("another-instance-salt-0123"), nil), ErrHandoffMalformed},
		{"after a restart (new epoch)", origin, t0, newHandoffAuth(t, testSalt, nil), ErrHandoffMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := redeem(tt.by, issue(), tt.at, tt.when)
			if r.Verdict != Rejected || !errors.Is(r.HandoffErr, tt.reason) {
				t.Errorf("%+v, want rejected with %v", r, tt.reason)
			}
		})
	}
	// The default port is the same origin, written either way; so is case.
	if r := redeem(a, issue(), "https://ABC-def.trycloudflare.com:443", t0); r.Verdict != Accepted {
		t.Errorf("same origin spelled differently: %+v", r)
	}
	// Tampering with any part is refused.
	tok = issue()
	for i := len(handoffPrefix); i < len(tok); i += 7 {
		c := byte('A')
		if tok[i] == 'A' {
			c = 'B'
		}
		bad := tok[:i] + string(c) + tok[i+1:]
		if r := redeem(a, bad, origin, t0); r.Verdict == Accepted {
			t.Fatalf("tampered token %q accepted", bad)
		}
	}
	// Handoff tokens are not sessions, nor secrets.
	if a.VerifySession(tok, t0) != SessionInvalid || a.MatchSecret(tok) {
		t.Error("a handoff token passes as another credential")
	}
	// Without a ledger, none are issued.
	plain := newTestAuth(t)
	if _, err := plain.IssueHandoff(origin, "", t0); !errors.Is(err, ErrHandoffDisabled) {
		t.Errorf("no ledger: %v", err)
	}
	// A client over the failure limit may still redeem one: it cannot be
	// guessed.
	if r := a.CheckSigned(Credentials{Handoff: issue(), HasHandoff: true, Origin: origin}, t0); r.Verdict != Accepted {
		t.Errorf("CheckSigned with a handoff: %+v", r)
	}
}

func TestNormalizeOrigin(t *testing.T) {
	for _, tt := range []struct{ in, want, err string }{
		{"https://abc.trycloudflare.com", "https://abc.trycloudflare.com", ""},
		{"HTTPS://ABC.example:443", "https://abc.example", ""},
		{"http://203.0.113.5:41234", "http://203.0.113.5:41234", ""},
		{"http://localhost:80", "http://localhost", ""},
		{"http://[::1]:1111", "http://[::1]:1111", ""},
		{"http://[::1]:80", "http://[::1]", ""},
		{"https://x.example/", "https://x.example", ""},
		{"", "", "origin: empty"},
		{"ftp://x.example", "", "origin: scheme must be http or https"},
		{"javascript:alert(1)", "", "origin: scheme must be http or https"},
		{"https://x.example/path", "", "origin: want scheme://host[:port] only, without a path, query, fragment or user"},
		{"https://x.example?q", "", "origin: want scheme://host[:port] only, without a path, query, fragment or user"},
		{"https://x.example#f", "", "origin: want scheme://host[:port] only, without a path, query, fragment or user"},
		{"https://user@x.example", "", "origin: want scheme://host[:port] only, without a path, query, fragment or user"},
		{"https://", "", "origin: no host"},
		{"https://x.example:0", "", "origin: bad port"},
		{"https://x.example:99999", "", "origin: bad port"},
		{"https://x.example:", "", "origin: bad port"},
		{"https://" + strings.Repeat("a", MaxOriginLen), "", "origin: longer than 512 bytes"},
	} {
		got, err := normalizeOrigin(tt.in)
		if got != tt.want || (err == nil) != (tt.err == "") || (err != nil && err.Error() != tt.err) {
			t.Errorf("normalizeOrigin(%q) = %q, %v; want %q, %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func FuzzNormalizeOrigin(f *testing.F) {
	for _, s := range []string{"https://a.example", "http://[::1]:80", "HTTP://X:443", "https://a@b", "http://a/b?c#d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		o, err := normalizeOrigin(in)
		if err != nil {
			return
		}
		// A normalised origin is a fixed point, plain, and short.
		again, err := normalizeOrigin(o)
		if err != nil || again != o {
			t.Fatalf("%q → %q → %q, %v", in, o, again, err)
		}
		if !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") || strings.ContainsAny(o[8:], "/?#@ ") || len(o) > MaxOriginLen {
			t.Fatalf("%q → %q is not a plain origin", in, o)
		}
	})
}

var tlsState = tls.ConnectionState{HandshakeComplete: true}

func TestClientAddr(t *testing.T) {
	for _, tt := range []struct {
		remote string
		hdr    []string
		want   string
	}{
		{"203.0.113.5:4000", nil, "203.0.113.5"},
		{"[::ffff:203.0.113.5]:4000", nil, "203.0.113.5"},
		// Our cloudflared: loopback peer with Cf-Ray.
		{"127.0.0.1:4000", []string{"Cf-Ray", "8a1b-AMS", "Cf-Connecting-IP", "198.51.100.7"}, "198.51.100.7"},
		{"[::1]:4000", []string{"Cf-Ray", "x", "Cf-Connecting-IP", "2001:db8::9"}, "2001:db8::9"},
		// Without Cf-Ray the header is not from cloudflared.
		{"127.0.0.1:4000", []string{"Cf-Connecting-IP", "198.51.100.7"}, "127.0.0.1"},
		{"127.0.0.1:4000", []string{"Cf-Ray", "x", "Cf-Connecting-IP", "not an ip"}, "127.0.0.1"},
		// Never from a peer that is not loopback, whatever it sends.
		{"203.0.113.5:4000", []string{"Cf-Ray", "x", "Cf-Connecting-IP", "198.51.100.7"}, "203.0.113.5"},
		{"203.0.113.5:4000", []string{"X-Forwarded-For", "198.51.100.7", "X-Real-Ip", "198.51.100.8"}, "203.0.113.5"},
		{"@", nil, "invalid IP"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tt.remote
		for i := 0; i+1 < len(tt.hdr); i += 2 {
			r.Header.Set(tt.hdr[i], tt.hdr[i+1])
		}
		if got := ClientAddr(r).String(); got != tt.want {
			t.Errorf("ClientAddr(%s, %q) = %s, want %s", tt.remote, tt.hdr, got, tt.want)
		}
	}
}

func TestRequestOrigin(t *testing.T) {
	for _, tt := range []struct {
		remote, host string
		tls          bool
		hdr          []string
		want         string
	}{
		{"203.0.113.5:1", "203.0.113.9:41234", false, nil, "http://203.0.113.9:41234"},
		{"203.0.113.5:1", "Portal.Example:443", true, nil, "https://portal.example"},
		{"127.0.0.1:1", "abc.trycloudflare.com", false, []string{"Cf-Ray", "x", "Cf-Visitor", `{"scheme":"https"}`}, "https://abc.trycloudflare.com"},
		{"127.0.0.1:1", "abc.trycloudflare.com", false, []string{"Cf-Ray", "x", "Cf-Visitor", `{"scheme":"http"}`}, "http://abc.trycloudflare.com"},
		// Cf-Visitor from a stranger is not believed.
		{"203.0.113.5:1", "abc.example", false, []string{"Cf-Ray", "x", "Cf-Visitor", `{"scheme":"https"}`}, "http://abc.example"},
		{"203.0.113.5:1", "bad host/x", false, nil, ""},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr, r.Host = tt.remote, tt.host
		if !tt.tls {
			r.TLS = nil
		} else if r.TLS == nil {
			r.TLS = &tlsState
		}
		for i := 0; i+1 < len(tt.hdr); i += 2 {
			r.Header.Set(tt.hdr[i], tt.hdr[i+1])
		}
		if got := RequestOrigin(r); got != tt.want {
			t.Errorf("RequestOrigin(%s %s tls=%v %q) = %q, want %q", tt.remote, tt.host, tt.tls, tt.hdr, got, tt.want)
		}
	}
}

func TestCrossSiteRefusal(t *testing.T) {
	for _, tt := range []struct {
		hdr  []string
		want bool // refused
	}{
		{nil, false},
		{[]string{"Sec-Fetch-Site", "same-origin"}, false},
		{[]string{"Sec-Fetch-Site", "same-origin", "Origin", "https://evil.example"}, true},
		{[]string{"Sec-Fetch-Site", "same-site"}, true},
		{[]string{"Sec-Fetch-Site", "cross-site"}, true},
		{[]string{"Sec-Fetch-Site", "none"}, true},
		{[]string{"Origin", "http://portal.example:1111"}, false},
		{[]string{"Origin", "http://PORTAL.example:1111"}, false},
		{[]string{"Origin", "http://portal.example:8080"}, true},
		{[]string{"Origin", "null"}, true},
		// Our pages' form POSTs (Referrer-Policy: no-referrer): Origin null,
		// and the browser's own word that they are same-origin.
		{[]string{"Sec-Fetch-Site", "same-origin", "Origin", "null"}, false},
		{[]string{"Sec-Fetch-Site", "cross-site", "Origin", "null"}, true},
		{[]string{"Origin", "https://evil.example"}, true},
		// Issue 20: a foreign Referer alone was accepted by the processes API.
		{[]string{"Referer", "https://evil.example/page"}, true},
		{[]string{"Referer", "http://portal.example:1111/"}, false},
	} {
		r := httptest.NewRequest("POST", "http://portal.example:1111/api/handoff", nil)
		for i := 0; i+1 < len(tt.hdr); i += 2 {
			r.Header.Set(tt.hdr[i], tt.hdr[i+1])
		}
		got := CrossSiteRefusal(r)
		if (got != "") != tt.want || (got != "" && !strings.HasPrefix(got, "cross-site request refused")) {
			t.Errorf("CrossSiteRefusal(%q) = %q, want refused=%v", tt.hdr, got, tt.want)
		}
	}
}

func TestCheckHandoffOrigin(t *testing.T) {
	own := []string{"203.0.113.9", "quick-one.trycloudflare.com"}
	for _, tt := range []struct {
		origin, host string
		ok           bool
	}{
		{"http://instance.example:8080", "instance.example:1111", true},
		{"https://INSTANCE.example", "instance.example:1111", true},
		{"http://203.0.113.9:40123", "localhost:1111", true},
		{"https://quick-one.trycloudflare.com", "203.0.113.9:1111", true},
		{"http://[::1]:8080", "[::1]:1111", true},
		{"https://evil.example", "instance.example:1111", false},
		{"https://quick-one.trycloudflare.com.evil.example", "instance.example", false},
		{"https://other.trycloudflare.com", "instance.example", false},
		{"javascript:alert(1)", "instance.example", false},
	} {
		err := CheckHandoffOrigin(tt.origin, tt.host, own)
		if (err == nil) != tt.ok {
			t.Errorf("%s (request to %s): %v, want allowed=%v", tt.origin, tt.host, err, tt.ok)
		}
	}
}
