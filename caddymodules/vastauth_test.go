package caddymodules

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/instanceportal/portal/portalconfig"
	"github.com/instanceportal/portal/vastauth"
)

const (
	vaPassword = "hunter2-but-longer"
	vaToken    = "open-button-token-0123456789"
	vaCookie   = "C.42_auth_token"
)

// newTestVastAuth provisions a handler the way the portal_yaml adapter
// configures it, with the secrets in the environment.
func newTestVastAuth(t *testing.T, mod func(*VastAuth)) *VastAuth {
	t.Helper()
	t.Setenv("VA_TEST_WEB_PASSWORD", vaPassword)
	t.Setenv("VA_TEST_OPEN_BUTTON_TOKEN", vaToken)
	h := &VastAuth{
		Username:   "vastai",
		Secrets:    []string{"{env.VA_TEST_WEB_PASSWORD}", "{env.VA_TEST_OPEN_BUTTON_TOKEN}"},
		CookieName: vaCookie,
		StateDir:   t.TempDir(),
		Realm:      "Instance Portal",
	}
	if mod != nil {
		mod(h)
	}
	provisionVastAuth(t, h)
	return h
}

func provisionVastAuth(t *testing.T, h *VastAuth) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	if err := h.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

// served is what the app behind the handler received.
type served struct {
	called bool
	req    *http.Request
}

type vaResult struct {
	rec    *httptest.ResponseRecorder
	status int // the written status, or the HandlerError's
	err    error
	app    served
}

func serveVA(h *VastAuth, r *http.Request) vaResult {
	var res vaResult
	res.rec = httptest.NewRecorder()
	repl := caddy.NewReplacer()
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		res.app = served{called: true, req: r}
		w.WriteHeader(http.StatusOK)
		return nil
	})
	res.err = h.ServeHTTP(res.rec, r, next)
	res.status = res.rec.Code
	var he caddyhttp.HandlerError
	if errors.As(res.err, &he) {
		res.status = he.StatusCode
	}
	return res
}

func basicAuth(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func req(method, target string, hdr ...string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	r.RemoteAddr = "203.0.113.5:40000"
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	return r
}

func TestVastAuthDecisions(t *testing.T) {
	h := newTestVastAuth(t, nil)
	session := h.auth.IssueSession(time.Now())
	tests := []struct {
		name   string
		r      *http.Request
		status int
		passed bool
	}{
		{"no credentials", req("GET", "/"), 401, false},
		{"token password", req("GET", "/x?token="+vaPassword), 200, true},
		{"token open button", req("GET", "/x?token="+vaToken), 200, true},
		{"wrong token", req("GET", "/x?token=nope"), 401, false},
		{"session cookie", req("GET", "/", "Cookie", vaCookie+"="+session), 200, true},
		{"raw secret cookie", req("GET", "/", "Cookie", vaCookie+"="+vaToken), 200, true},
		{"cookie text inside another cookie", req("GET", "/", "Cookie", "x="+vaCookie+"="+vaToken), 401, false},
		{"right value under another name", req("GET", "/", "Cookie", "other_auth_token="+vaToken), 401, false},
		{"bearer", req("GET", "/", "Authorization", "Bearer "+vaToken), 200, true},
		{"bearer wrong", req("GET", "/", "Authorization", "Bearer "+vaToken+"x"), 401, false},
		{"basic", req("GET", "/", "Authorization", basicAuth("vastai", vaPassword)), 200, true},
		{"basic wrong user", req("GET", "/", "Authorization", basicAuth("root", vaPassword)), 401, false},
		{"app's own auth scheme alone", req("GET", "/", "Authorization", "token abc"), 401, false},
		{"acme challenge", req("GET", "/.well-known/acme-challenge/abc"), 200, true},
		{"acme challenge traversal", req("GET", "/.well-known/acme-challenge/..%2f..%2fsecret"), 401, false},
		{"manifest", req("GET", "/manifest.json"), 200, true},
		{"webmanifest", req("GET", "/manifest.webmanifest"), 200, true},
		{"site webmanifest", req("GET", "/site.webmanifest"), 200, true},
		{"security.txt", req("GET", "/security.txt"), 200, true},
		{"well-known security.txt", req("GET", "/.well-known/security.txt"), 200, true},
		{"change-password", req("GET", "/.well-known/change-password"), 200, true},
		{"portal resolver", req("GET", "/portal-resolver"), 200, true},
		{"public path with a wrong token", req("GET", "/manifest.json?token=x"), 200, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := serveVA(h, tt.r)
			if res.status != tt.status || res.app.called != tt.passed {
				t.Fatalf("status %d, passed %v; want %d, %v (err %v)", res.status, res.app.called, tt.status, tt.passed, res.err)
			}
			if tt.status == 401 {
				if got := res.rec.Header().Get("WWW-Authenticate"); got != `Basic realm="Instance Portal", charset="UTF-8"` {
					t.Errorf("WWW-Authenticate = %q", got)
				}
			}
		})
	}
}

func findCookie(t *testing.T, rec *httptest.ResponseRecorder, name string) *http.Cookie {
	t.Helper()
	for _, c := range rec.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestVastAuthTokenSetsSessionCookie(t *testing.T) {
	h := newTestVastAuth(t, nil)
	for _, tls := range []bool{false, true} {
		r := req("GET", "/lab?token="+vaToken+"&x=1", "Accept", "application/json")
		if tls {
			r.TLS = &tlsState
		}
		res := serveVA(h, r)
		if !res.app.called {
			t.Fatalf("API client with a token was not served directly: %d", res.status)
		}
		raw := res.rec.Header().Get("Set-Cookie")
		for _, want := range []string{vaCookie + "=v1.", "Path=/", "Max-Age=604800", "HttpOnly", "SameSite=Lax"} {
			if !strings.Contains(raw, want) {
				t.Errorf("Set-Cookie %q lacks %q", raw, want)
			}
		}
		if strings.Contains(raw, "Secure") != tls {
			t.Errorf("Set-Cookie %q: Secure must be set exactly over TLS (tls=%v)", raw, tls)
		}
		if strings.Contains(raw, vaToken) || strings.Contains(raw, vaPassword) {
			t.Errorf("Set-Cookie %q reveals the secret", raw)
		}
		// The issued cookie authenticates alone.
		c := findCookie(t, res.rec, vaCookie)
		if again := serveVA(h, req("GET", "/", "Cookie", c.String())); !again.app.called {
			t.Errorf("issued session cookie rejected: %d", again.status)
		}
	}
}

var tlsState = tls.ConnectionState{HandshakeComplete: true}

func TestVastAuthNavigationRedirectsWithoutToken(t *testing.T) {
	h := newTestVastAuth(t, nil)
	for _, hdr := range [][]string{
		{"Accept", "text/html,application/xhtml+xml,*/*;q=0.8"},
		{"Sec-Fetch-Dest", "document"},
	} {
		res := serveVA(h, req("GET", "/tree/a%20b?x=1&token="+vaToken+"&y=%2F", hdr...))
		if res.status != http.StatusFound || res.app.called {
			t.Fatalf("%v: status %d, app called %v; want 302 without the app", hdr, res.status, res.app.called)
		}
		if loc := res.rec.Header().Get("Location"); loc != "/tree/a%20b?x=1&y=%2F" {
			t.Errorf("Location = %q", loc)
		}
		if findCookie(t, res.rec, vaCookie) == nil {
			t.Error("redirect did not set the session cookie")
		}
	}
	// A POST is served (a redirect would turn it into a GET).
	if res := serveVA(h, req("POST", "/?token="+vaToken, "Accept", "text/html")); !res.app.called {
		t.Errorf("POST with token: %d", res.status)
	}
	// A path a browser would read as another host is not redirected.
	if res := serveVA(h, req("GET", "//evil.example/?token="+vaToken, "Accept", "text/html")); res.status == http.StatusFound {
		t.Errorf("open redirect to %q", res.rec.Header().Get("Location"))
	}
	// Wrong token on a navigation: the login prompt, not a redirect.
	if res := serveVA(h, req("GET", "/?token=wrong", "Accept", "text/html")); res.status != 401 {
		t.Errorf("wrong token navigation: %d", res.status)
	}
}

func TestVastAuthStripsOurCredentialsOnly(t *testing.T) {
	h := newTestVastAuth(t, nil)
	session := h.auth.IssueSession(time.Now())

	// Token and cookie and our bearer: all removed; the app's cookie and
	// parameters remain byte for byte.
	r := req("GET", "/api?a=1&token="+vaToken+"&b=%2F",
		"Cookie", "app=1; "+vaCookie+"="+session+"; other=\"x y\"",
		"Authorization", "Bearer "+vaPassword)
	res := serveVA(h, r)
	if !res.app.called {
		t.Fatalf("status %d", res.status)
	}
	got := res.app.req
	if got.URL.RawQuery != "a=1&b=%2F" || strings.Contains(got.RequestURI, "token") {
		t.Errorf("upstream query %q, RequestURI %q", got.URL.RawQuery, got.RequestURI)
	}
	if c := got.Header["Cookie"]; len(c) != 1 || c[0] != `app=1; other="x y"` {
		t.Errorf("upstream Cookie = %q", c)
	}
	if a := got.Header.Get("Authorization"); a != "" {
		t.Errorf("upstream Authorization = %q, want removed", a)
	}

	// An app's own Authorization passes when our cookie authenticates.
	res = serveVA(h, req("GET", "/", "Cookie", vaCookie+"="+session, "Authorization", "Bearer app-key"))
	if !res.app.called || res.app.req.Header.Get("Authorization") != "Bearer app-key" {
		t.Errorf("app's own Authorization not passed: %+v", res.app.req.Header)
	}
	if _, ok := res.app.req.Header["Cookie"]; ok {
		t.Errorf("a Cookie header holding only our cookie must be removed: %q", res.app.req.Header["Cookie"])
	}

	// Basic with our secret is removed too; on a public path as well.
	res = serveVA(h, req("GET", "/manifest.json?token=zzz", "Authorization", basicAuth("vastai", vaToken)))
	if !res.app.called || res.app.req.Header.Get("Authorization") != "" || res.app.req.URL.RawQuery != "" {
		t.Errorf("public path: upstream saw Authorization %q, query %q", res.app.req.Header.Get("Authorization"), res.app.req.URL.RawQuery)
	}
	// The user is exported for access logs.
	if res := serveVA(h, req("GET", "/", "Authorization", basicAuth("vastai", vaToken))); findCookie(t, res.rec, vaCookie) == nil {
		t.Error("Basic login did not set the session cookie")
	}
}

func TestVastAuthRejectedCookieIsCleared(t *testing.T) {
	h := newTestVastAuth(t, nil)
	res := serveVA(h, req("GET", "/", "Cookie", vaCookie+"=stale"))
	c := findCookie(t, res.rec, vaCookie)
	if res.status != 401 || c == nil || c.MaxAge >= 0 {
		t.Errorf("status %d, cookie %v: want 401 clearing the cookie", res.status, c)
	}
}

func TestVastAuthLogout(t *testing.T) {
	h := newTestVastAuth(t, nil)
	res := serveVA(h, req("GET", vastauth.LogoutPath))
	if res.status != 200 || res.app.called {
		t.Fatalf("logout: %d, app called %v", res.status, res.app.called)
	}
	raw := res.rec.Header().Get("Set-Cookie")
	if !strings.HasPrefix(raw, vaCookie+"=;") || !strings.Contains(raw, "Max-Age=0") {
		t.Errorf("logout Set-Cookie = %q", raw)
	}
	if !strings.Contains(res.rec.Body.String(), "Logged out") {
		t.Errorf("logout page: %q", res.rec.Body.String())
	}
}

func TestVastAuthLimiter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	h := newTestVastAuth(t, func(h *VastAuth) {
		h.FailureLimit = 5
		h.FailureWindow = caddy.Duration(time.Minute)
		h.now = func() time.Time { return now }
	})
	for i := range 5 {
		if res := serveVA(h, req("GET", "/", "Authorization", "Bearer wrong")); res.status != 401 {
			t.Fatalf("failure %d: %d, want 401", i+1, res.status)
		}
	}
	res := serveVA(h, req("GET", "/", "Authorization", "Bearer wrong"))
	if res.status != 429 || res.rec.Header().Get("Retry-After") == "" {
		t.Fatalf("6th failure: %d, Retry-After %q; want 429 with Retry-After", res.status, res.rec.Header().Get("Retry-After"))
	}
	// A request without credentials is not a failure: it gets the prompt.
	if res := serveVA(h, req("GET", "/")); res.status != 401 {
		t.Errorf("no credentials while limited: %d, want 401", res.status)
	}
	// A valid credential is never limited.
	if res := serveVA(h, req("GET", "/", "Authorization", "Bearer "+vaToken)); !res.app.called {
		t.Errorf("valid credential while limited: %d", res.status)
	}
	// Another client is not limited.
	other := req("GET", "/", "Authorization", "Bearer wrong")
	other.RemoteAddr = "198.51.100.1:1234"
	if res := serveVA(h, other); res.status != 401 {
		t.Errorf("other client: %d", res.status)
	}
	// A spoofed forwarding header does not change the client.
	spoof := req("GET", "/", "Authorization", "Bearer wrong", "X-Forwarded-For", "192.0.2.99")
	if res := serveVA(h, spoof); res.status != 429 {
		t.Errorf("X-Forwarded-For escaped the limiter: %d", res.status)
	}
	// Recovery once the window has passed.
	now = now.Add(3 * time.Minute)
	if res := serveVA(h, req("GET", "/", "Authorization", "Bearer wrong")); res.status != 401 {
		t.Errorf("after the window: %d, want 401", res.status)
	}
}

func TestVastAuthLimiterSurvivesReload(t *testing.T) {
	cfg := func(h *VastAuth) { h.FailureLimit = 3; h.FailureWindow = caddy.Duration(time.Hour) }
	old := newTestVastAuth(t, cfg)
	for range 3 {
		serveVA(old, req("GET", "/", "Authorization", "Bearer wrong"))
	}
	// A reload provisions the new config before the old one is cleaned up.
	fresh := newTestVastAuth(t, cfg)
	if err := old.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if res := serveVA(fresh, req("GET", "/", "Authorization", "Bearer wrong")); res.status != 429 {
		t.Errorf("after reload: %d, want 429 (counts kept)", res.status)
	}
	if err := fresh.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if n, ok := failureLimiters.References(fresh.limiterKey); ok {
		t.Errorf("limiter still referenced %d times after every config was cleaned up", n)
	}
	// Cleanup twice, or after a failed Provision, is harmless.
	if err := fresh.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := new(VastAuth).Cleanup(); err != nil {
		t.Fatal(err)
	}
}

func TestVastAuthGeneratedToken(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("VA_TEST_EMPTY", "")
	mk := func() *VastAuth {
		h := &VastAuth{Secrets: []string{"{env.VA_TEST_EMPTY}", "{env.VA_TEST_UNSET}"}, CookieName: vaCookie, StateDir: dir}
		provisionVastAuth(t, h)
		return h
	}
	h := mk()
	tok, err := vastauth.ReadToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(vastauth.TokenPath(dir)); st.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v", st.Mode().Perm())
	}
	if res := serveVA(h, req("GET", "/?token="+tok)); !res.app.called {
		t.Fatalf("generated token rejected: %d", res.status)
	}
	// A restart loads the same token, so cookies stay valid.
	session := h.auth.IssueSession(time.Now())
	h2 := mk()
	if res := serveVA(h2, req("GET", "/", "Cookie", vaCookie+"="+session)); !res.app.called {
		t.Errorf("session from before the restart rejected: %d", res.status)
	}
}

func TestVastAuthProvisionErrors(t *testing.T) {
	// A state dir that cannot hold the token, with no secret: a clear error.
	file := t.TempDir() + "/not-a-dir"
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	h := &VastAuth{Secrets: []string{""}, StateDir: file}
	err := h.Provision(ctx)
	if err == nil || !strings.Contains(err.Error(), "generated token") {
		t.Errorf("Provision = %v", err)
	}
	if err := h.Cleanup(); err != nil {
		t.Errorf("Cleanup after failed Provision: %v", err)
	}

	for name, mod := range map[string]func(*VastAuth){
		"cookie name":   func(h *VastAuth) { h.CookieName = "bad name;" },
		"username":      func(h *VastAuth) { h.Username = "a:b" },
		"realm":         func(h *VastAuth) { h.Realm = `x"y` },
		"failure limit": func(h *VastAuth) { h.FailureLimit = -1 },
	} {
		t.Run(name, func(t *testing.T) {
			h := &VastAuth{Secrets: []string{"s3cret-long-enough"}, CookieName: vaCookie, StateDir: t.TempDir()}
			mod(h)
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			err := h.Provision(ctx)
			if err == nil {
				err = h.Validate()
			}
			_ = h.Cleanup()
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error reveals the secret: %v", err)
			}
		})
	}
}

func TestVastAuthDefaults(t *testing.T) {
	t.Setenv("WEB_PASSWORD", "")
	t.Setenv("OPEN_BUTTON_TOKEN", "from-env-token-abcdef")
	t.Setenv("WEB_USERNAME", "")
	t.Setenv("VAST_CONTAINERLABEL", "C.7")
	t.Setenv("PORTAL_STATE_DIR", t.TempDir())
	h := &VastAuth{}
	provisionVastAuth(t, h)
	if h.username != "vastai" || h.cookieName != "C.7_auth_token" || h.realm != "Instance Portal" {
		t.Errorf("defaults: user %q cookie %q realm %q", h.username, h.cookieName, h.realm)
	}
	if res := serveVA(h, req("GET", "/", "Authorization", basicAuth("vastai", "from-env-token-abcdef"))); !res.app.called {
		t.Errorf("default secrets ignore OPEN_BUTTON_TOKEN: %d", res.status)
	}
	// The JSON form carries no secret: only what was configured.
	b, _ := json.Marshal(h)
	if strings.Contains(string(b), "from-env") {
		t.Errorf("config JSON holds the secret: %s", b)
	}
}

func TestVastAuthCaddyfile(t *testing.T) {
	good := `vastauth {
		username admin
		secret {env.WEB_PASSWORD} {env.OPEN_BUTTON_TOKEN}
		secret literal
		cookie_name {env.VAST_CONTAINERLABEL}_auth_token
		state_dir /var/lib/portal
		realm "Instance Portal"
		session_ttl 1d
		failure_limit 10 30s
		max_tracked_clients 500
	}`
	var h VastAuth
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(good)); err != nil {
		t.Fatal(err)
	}
	want := VastAuth{
		Username: "admin", Secrets: []string{"{env.WEB_PASSWORD}", "{env.OPEN_BUTTON_TOKEN}", "literal"},
		CookieName: "{env.VAST_CONTAINERLABEL}_auth_token", StateDir: "/var/lib/portal", Realm: "Instance Portal",
		SessionTTL: caddy.Duration(24 * time.Hour), FailureLimit: 10, FailureWindow: caddy.Duration(30 * time.Second),
		MaxTrackedClients: 500,
	}
	gotJSON, _ := json.Marshal(h)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Errorf("parsed\n%s\nwant\n%s", gotJSON, wantJSON)
	}
	var bare VastAuth
	if err := bare.UnmarshalCaddyfile(caddyfile.NewTestDispenser("vastauth")); err != nil || bare.Secrets != nil {
		t.Errorf("bare directive: %v, %+v", err, bare)
	}

	bad := map[string]string{
		"argument":           "vastauth extra",
		"unknown":            "vastauth {\n bogus 1\n}",
		"duplicate":          "vastauth {\n username a\n username b\n}",
		"username arity":     "vastauth {\n username a b\n}",
		"secret arity":       "vastauth {\n secret\n}",
		"ttl":                "vastauth {\n session_ttl soon\n}",
		"ttl too short":      "vastauth {\n session_ttl 10ms\n}",
		"limit":              "vastauth {\n failure_limit 0\n}",
		"limit window":       "vastauth {\n failure_limit 5 never\n}",
		"limit arity":        "vastauth {\n failure_limit 5 1m x\n}",
		"max clients":        "vastauth {\n max_tracked_clients -1\n}",
		"nested block":       "vastauth {\n realm x {\n a\n }\n}",
		"cookie name arity":  "vastauth {\n cookie_name\n}",
		"state dir arity":    "vastauth {\n state_dir a b\n}",
		"max clients arity":  "vastauth {\n max_tracked_clients\n}",
		"session_ttl arity":  "vastauth {\n session_ttl 1d 2d\n}",
		"failure_limit none": "vastauth {\n failure_limit\n}",
	}
	for name, in := range bad {
		t.Run(name, func(t *testing.T) {
			var h VastAuth
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in))
			if err == nil {
				t.Fatalf("accepted %q", in)
			}
			if !strings.Contains(err.Error(), "Testfile:") {
				t.Errorf("error %q does not name file:line", err)
			}
		})
	}
}

// The directive sorts before reverse_proxy in a Caddyfile site, so it
// guards what it sits next to.
func TestVastAuthCaddyfileOrder(t *testing.T) {
	adapter := caddyconfig.GetAdapter("caddyfile")
	out, _, err := adapter.Adapt([]byte(":8080 {\n reverse_proxy 127.0.0.1:9\n vastauth\n}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	va, rp := strings.Index(s, `"handler":"vastauth"`), strings.Index(s, `"handler":"reverse_proxy"`)
	if va < 0 || rp < 0 || va > rp {
		t.Errorf("vastauth must come before reverse_proxy:\n%s", s)
	}
}

func TestPortalTokenCommand(t *testing.T) {
	dir := t.TempDir()
	env := func(kv ...string) portalconfig.Environ {
		m := portalconfig.Environ{"PORTAL_STATE_DIR": dir}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	printed := func(l portalconfig.Environ) string {
		t.Helper()
		var b strings.Builder
		if err := printToken(&b, l); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	if got := printed(env("OPEN_BUTTON_TOKEN", "obt", "WEB_PASSWORD", "pw")); got != "obt\n" {
		t.Errorf("with both set: %q", got)
	}
	if got := printed(env("OPEN_BUTTON_TOKEN", "", "WEB_PASSWORD", "pw")); got != "pw\n" {
		t.Errorf("with WEB_PASSWORD only: %q", got)
	}
	generated := printed(env())
	if _, err := os.Stat(vastauth.TokenPath(dir)); err != nil {
		t.Fatalf("token not persisted: %v", err)
	}
	if again := printed(env()); again != generated {
		t.Errorf("second run printed %q, first %q", again, generated)
	}
	// The handler, provisioned the way the adapter does, accepts it.
	h := &VastAuth{Secrets: []string{"{env.VA_TEST_UNSET_1}"}, CookieName: vaCookie, StateDir: dir}
	provisionVastAuth(t, h)
	if res := serveVA(h, req("GET", "/", "Authorization", "Bearer "+strings.TrimSpace(generated))); !res.app.called {
		t.Errorf("the printed token is not the one the handler accepts: %d", res.status)
	}
	// The subcommand is registered under `caddy portal`.
	found := false
	for _, c := range portalSubcommands() {
		if c.Name() == "token" {
			found = true
		}
	}
	if !found {
		t.Error("`caddy portal token` is not registered")
	}
}
