package caddymodules

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// caddyContext is a throwaway Caddy context, cancelled when the test ends.
func caddyContext(t testing.TB) caddy.Context {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	t.Cleanup(cancel)
	return ctx
}

// provision runs a module's lifecycle as Caddy does for a test: Provision
// with a throwaway context, then Validate when it has one, and Cleanup
// when the test ends (Cleanup must tolerate running after the test's own).
// It returns m.
func provision[M caddy.Provisioner](t testing.TB, m M) M {
	t.Helper()
	if err := m.Provision(caddyContext(t)); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if c, ok := any(m).(caddy.CleanerUpper); ok {
		t.Cleanup(func() { _ = c.Cleanup() })
	}
	if v, ok := any(m).(caddy.Validator); ok {
		if err := v.Validate(); err != nil {
			t.Fatalf("Validate: %v", err)
		}
	}
	return m
}

// parseCaddyfile reads in into m, failing the test on an error.
func parseCaddyfile(t *testing.T, m caddyfile.Unmarshaler, in string) {
	t.Helper()
	if err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil {
		t.Fatalf("%q: %v", in, err)
	}
}

// refuseCaddyfile reads in into m, which must refuse it with an error
// containing want; it returns the error for further checks.
func refuseCaddyfile(t *testing.T, m caddyfile.Unmarshaler, in, want string) error {
	t.Helper()
	err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in))
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("%q: got error %v, want one containing %q", in, err, want)
	}
	return err
}

// nextNotCalled is the next handler of a terminal handler under test.
var nextNotCalled = caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
	panic("a terminal handler called next")
})

// loadConfig runs a config in-process until the test ends.
func loadConfig(t *testing.T, cfg []byte) {
	t.Helper()
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatalf("loading config: %v\n%s", err, cfg)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
}

// liveAnswer is what a server the test runs answered.
type liveAnswer struct {
	status int
	header http.Header
	body   string
}

// roundTrip sends one request to a server the test runs, with hdr as
// pairs of header name and value. It follows no redirect and leaves the
// path as written.
func roundTrip(t *testing.T, method, url, body string, hdr ...string) liveAnswer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return liveAnswer{resp.StatusCode, resp.Header, string(b)}
}
