package caddymodules

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/instanceportal/portal/confdecl"
	"github.com/instanceportal/portal/portalcmd"
	"github.com/instanceportal/portal/vastauth"
)

const (
	vaPassword = "hunter2-but-longer"
	vaToken    = "open-button-token-0123456789"
	vaCookie   = "C.42_auth_token"
)

// newTestVastAuth provisions a handler the way the portal_yaml adapter
// configures it, with the secrets in the environment, and its own state
// directory unless mod sets one.
func newTestVastAuth(t *testing.T, mod func(*VastAuth)) *VastAuth {
	t.Helper()
	t.Setenv("VA_TEST_WEB_PASSWORD", vaPassword)
	t.Setenv("VA_TEST_OPEN_BUTTON_TOKEN", vaToken)
	h := &VastAuth{Config: vastauth.Config{
		SecretSource: vastauth.SecretSource{
			Secrets:  []string{"{env.VA_TEST_WEB_PASSWORD}", "{env.VA_TEST_OPEN_BUTTON_TOKEN}"},
			StateDir: t.TempDir(),
		},
		Username:   "vastai",
		CookieName: vaCookie,
		Realm:      "Instance Portal",
	}}
	if mod != nil {
		mod(h)
	}
	provision(t, h)
	return h
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
		// Issue 14 item 13: these reached the backend unauthenticated.
		{"acme challenge ..;", req("GET", "/.well-known/acme-challenge/..;/..;/admin"), 401, false},
		{"acme challenge double-encoded dots", req("GET", "/.well-known/acme-challenge/%252e%252e/%252e%252e/admin"), 401, false},
		{"acme challenge encoded dots", req("GET", "/.well-known/acme-challenge/%2e%2e/admin"), 401, false},
		{"manifest with a matrix parameter", req("GET", "/manifest.json;/../admin"), 401, false},
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
		for _, want := range []string{vaCookie + "=v2.", "Path=/", "Max-Age=604800", "HttpOnly", "SameSite=Lax"} {
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
	// Wrong token on a navigation: the login page, not a redirect.
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
	if res := serveVA(h, req("GET", "/", "Authorization", basicAuth("vastai", vaToken))); findCookie(t, res.rec, vaCookie) == nil {
		t.Error("Basic login did not set the session cookie")
	}
}

// Issue 14 item 9: with a cookie authenticating the request, our secret
// reached the app in Authorization forms the handler did not recognise.
func TestVastAuthStripsSecretInAnyAuthorizationForm(t *testing.T) {
	h := newTestVastAuth(t, nil)
	session := h.auth.IssueSession(time.Now())
	for _, authz := range []string{
		"Basic root:" + vaPassword,
		"Bearer\t" + vaToken,
		`Bearer "` + vaToken + `"`,
		"Token " + vaPassword,
		"token " + vaToken,
		vaToken,
		basicAuth("someone", vaToken),
		`Digest username="vastai", password="` + vaPassword + `"`,
	} {
		r := req("GET", "/", "Cookie", vaCookie+"="+session)
		r.Header["Authorization"] = []string{authz, "Bearer app-key"}
		res := serveVA(h, r)
		if !res.app.called {
			t.Fatalf("%q: status %d", authz, res.status)
		}
		if got := res.app.req.Header["Authorization"]; len(got) != 1 || got[0] != "Bearer app-key" {
			t.Errorf("%q: the app saw Authorization %q; want only the app's own", authz, got)
		}
	}
}

// Issue 20: an X-Api-Key header carrying our secret is dropped; an app's
// own key passes.
func TestVastAuthKeepsXAPIKeyForTheApp(t *testing.T) {
	h := newTestVastAuth(t, nil)
	session := h.auth.IssueSession(time.Now())
	// The instance token is Syncthing's API key on the reference's image:
	// X-Api-Key reaches the app, whatever it holds (SECURITY.md).
	for _, key := range []string{vaToken, "app-key-123"} {
		res := serveVA(h, req("GET", "/", "Cookie", vaCookie+"="+session, "X-Api-Key", key))
		if !res.app.called {
			t.Fatalf("%q: status %d", key, res.status)
		}
		if got := res.app.req.Header.Get("X-Api-Key"); got != key {
			t.Errorf("X-Api-Key %q: the app saw %q", key, got)
		}
	}
}

// Issue 20: our secret under a parameter name we do not know reaches the
// app no more; the app's own parameters pass as written.
func TestVastAuthStripsSecretUnderAnyQueryName(t *testing.T) {
	h := newTestVastAuth(t, nil)
	session := h.auth.IssueSession(time.Now())
	for _, c := range []struct{ query, want string }{
		{"Token=" + vaPassword, ""},
		{"a=1&token[]=" + vaPassword + "&b=2", "a=1&b=2"},
		{"a=1;token=" + vaPassword, "a=1"},
		{"key=" + url.QueryEscape("Bearer "+vaPassword), ""},
		{"page=2&q=cats", "page=2&q=cats"},
	} {
		res := serveVA(h, req("GET", "/x?"+c.query, "Cookie", vaCookie+"="+session))
		if !res.app.called {
			t.Fatalf("%q: status %d", c.query, res.status)
		}
		if got := res.app.req.URL.RawQuery; got != c.want || strings.Contains(res.app.req.RequestURI, vaPassword) {
			t.Errorf("?%s: the app saw %q (%s), want %q", c.query, got, res.app.req.RequestURI, c.want)
		}
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

// Issue 13: a browser that cancels the login prompt sees a page saying how
// to log in (never the token); an API client gets the bare 401.
func TestVastAuthLoginPage(t *testing.T) {
	h := newTestVastAuth(t, func(h *VastAuth) { h.Username = "alice" })
	res := serveVA(h, req("GET", "/lab", "Accept", "text/html,*/*"))
	body := res.rec.Body.String()
	if res.status != 401 || res.err != nil || res.rec.Header().Get("WWW-Authenticate") == "" {
		t.Fatalf("browser: status %d, err %v, challenge %q", res.status, res.err, res.rec.Header().Get("WWW-Authenticate"))
	}
	for _, want := range []string{"<code>alice</code>", "caddy portal token", "Open", "prefers-color-scheme: dark"} {
		if !strings.Contains(body, want) {
			t.Errorf("login page lacks %q:\n%s", want, body)
		}
	}
	for _, secret := range []string{vaToken, vaPassword} {
		if strings.Contains(body, secret) {
			t.Fatal("the login page shows a secret")
		}
	}
	csp := res.rec.Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "style-src 'sha256-") || res.rec.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("headers: %v", res.rec.Header())
	}
	if res := serveVA(h, req("GET", "/api/x", "Accept", "application/json")); res.status != 401 || res.rec.Body.Len() != 0 {
		t.Errorf("API client: %d with a body of %d bytes", res.status, res.rec.Body.Len())
	}
}

// Issue 14 item 11: logout is a POST that revokes the session; a GET only
// shows a page with the button.
func TestVastAuthLogout(t *testing.T) {
	h := newTestVastAuth(t, nil)
	session := h.auth.IssueSession(time.Now())
	cookie := vaCookie + "=" + session

	res := serveVA(h, req("GET", vastauth.LogoutPath, "Cookie", cookie))
	if res.status != 200 || res.app.called || res.rec.Header().Get("Set-Cookie") != "" {
		t.Fatalf("GET logout: %d, app %v, Set-Cookie %q; want a page that changes nothing", res.status, res.app.called, res.rec.Header().Get("Set-Cookie"))
	}
	if body := res.rec.Body.String(); !strings.Contains(body, `<form method="post" action="/.portal/logout">`) {
		t.Errorf("GET logout page has no POST button:\n%s", body)
	}
	if res := serveVA(h, req("GET", "/", "Cookie", cookie)); !res.app.called {
		t.Fatal("a GET of the logout page ended the session")
	}

	// Cross-site POSTs are refused and change nothing.
	for _, hdr := range [][]string{{"Sec-Fetch-Site", "cross-site"}, {"Sec-Fetch-Site", "same-site"}, {"Origin", "https://evil.example"}} {
		res := serveVA(h, req("POST", vastauth.LogoutPath, append([]string{"Cookie", cookie}, hdr...)...))
		if res.status != 403 || res.rec.Header().Get("Set-Cookie") != "" {
			t.Errorf("%v: %d", hdr, res.status)
		}
	}
	if res := serveVA(h, req("PUT", vastauth.LogoutPath)); res.status != 405 || res.rec.Header().Get("Allow") != "GET, HEAD, POST" {
		t.Errorf("PUT: %d, Allow %q", res.status, res.rec.Header().Get("Allow"))
	}

	res = serveVA(h, req("POST", vastauth.LogoutPath, "Cookie", cookie, "Sec-Fetch-Site", "same-origin", "Origin", "http://example.com"))
	raw := res.rec.Header().Get("Set-Cookie")
	if res.status != 200 || !strings.HasPrefix(raw, vaCookie+"=;") || !strings.Contains(raw, "Max-Age=0") || !strings.Contains(res.rec.Body.String(), "Logged out") {
		t.Fatalf("POST logout: %d, Set-Cookie %q", res.status, raw)
	}
	// The old cookie is dead, here and on any other port of the instance
	// (another handler on the same state directory), and after a restart.
	if res := serveVA(h, req("GET", "/", "Cookie", cookie)); res.status != 401 || res.app.called {
		t.Errorf("the logged-out session still works: %d", res.status)
	}
	other := newTestVastAuth(t, func(o *VastAuth) { o.StateDir = h.StateDir })
	if res := serveVA(other, req("GET", "/", "Cookie", cookie)); res.status != 401 {
		t.Errorf("the logged-out session works on another port: %d", res.status)
	}
	_ = h.Cleanup()
	_ = other.Cleanup()
	restarted := newTestVastAuth(t, func(o *VastAuth) { o.StateDir = h.StateDir })
	if res := serveVA(restarted, req("GET", "/", "Cookie", cookie)); res.status != 401 {
		t.Errorf("the logged-out session works after a restart: %d", res.status)
	}
	// A new login works.
	if res := serveVA(restarted, req("GET", "/", "Authorization", "Bearer "+vaToken)); !res.app.called {
		t.Errorf("new login: %d", res.status)
	}
}

// Issue 14 item 11: the session key is salted per instance: a cookie from
// another instance that shares the secrets does not work.
func TestVastAuthSessionOfAnotherInstance(t *testing.T) {
	a := newTestVastAuth(t, nil)
	b := newTestVastAuth(t, nil) // same secrets, its own state directory
	if res := serveVA(a, req("GET", "/", "Cookie", vaCookie+"="+b.auth.IssueSession(time.Now()))); res.status != 401 {
		t.Errorf("another instance's session: %d, want 401", res.status)
	}
	if st, err := os.Stat(filepath.Join(a.StateDir, vastauth.SaltFileName)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("salt file: %v, %v", st, err)
	}
}

func TestVastAuthLimiter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	h := newTestVastAuth(t, func(h *VastAuth) {
		h.FailureLimit = 5
		h.FailureWindow = confdecl.Duration(time.Minute)
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
	// Another client is not limited.
	other := req("GET", "/", "Authorization", "Bearer wrong")
	other.RemoteAddr = "198.51.100.1:1234"
	if res := serveVA(h, other); res.status != 401 {
		t.Errorf("other client: %d", res.status)
	}
	// A spoofed forwarding header does not change the client.
	spoof := req("GET", "/", "Authorization", "Bearer wrong", "X-Forwarded-For", "192.0.2.99", "Cf-Ray", "x", "Cf-Connecting-IP", "192.0.2.99")
	if res := serveVA(h, spoof); res.status != 429 {
		t.Errorf("forwarding headers from a stranger escaped the limiter: %d", res.status)
	}
	// A browser over the limit gets a page saying so.
	if res := serveVA(h, req("GET", "/", "Authorization", "Bearer wrong", "Accept", "text/html")); res.status != 429 || !strings.Contains(res.rec.Body.String(), "Too many wrong logins") {
		t.Errorf("browser over the limit: %d", res.status)
	}
	// Recovery once the window has passed.
	now = now.Add(3 * time.Minute)
	if res := serveVA(h, req("GET", "/", "Authorization", "Bearer wrong")); res.status != 401 {
		t.Errorf("after the window: %d, want 401", res.status)
	}
}

// Issue 14 item 1: the credential was checked before the limiter, and a
// right one was never limited, so a guesser being answered 429 still got
// 200 for the right password. Now, over the limit, every guessable
// credential is refused unchecked; only a signed session passes.
func TestVastAuthBruteForceFindsNothing(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	h := newTestVastAuth(t, func(h *VastAuth) { h.now = func() time.Time { return now } }) // 20 a minute
	session := h.auth.IssueSession(now)                                                    // the user's browser, logged in before
	guesses := []func(pw string) *http.Request{
		func(pw string) *http.Request { return req("GET", "/", "Authorization", basicAuth("vastai", pw)) },
		func(pw string) *http.Request { return req("GET", "/", "Authorization", "Bearer "+pw) },
		func(pw string) *http.Request { return req("GET", "/?token="+pw) },
		func(pw string) *http.Request { return req("GET", "/", "Cookie", vaCookie+"="+pw) },
	}
	// A dictionary run in which the user's password is the 500th word.
	found := 0
	for i := range 1000 {
		pw := "guess-" + string(rune('a'+i%26)) + time.Duration(i).String()
		if i == 499 {
			pw = vaPassword
		}
		res := serveVA(h, guesses[i%len(guesses)](pw))
		if res.app.called || res.status == 200 {
			found++
		}
		if i >= 20 && res.status != 429 {
			t.Fatalf("guess %d: %d, want 429", i+1, res.status)
		}
		now = now.Add(50 * time.Millisecond) // 1000 guesses in 50 s: within the window
		if i%100 == 0 {
			if res := serveVA(h, req("GET", "/", "Cookie", vaCookie+"="+session)); !res.app.called {
				t.Fatalf("the user's session was refused during the attack: %d", res.status)
			}
		}
	}
	if found != 0 {
		t.Fatalf("the brute force found the password %d times", found)
	}
	// Every right credential kind is refused while over the limit.
	for i, g := range guesses {
		if res := serveVA(h, g(vaToken)); res.status != 429 || res.app.called {
			t.Errorf("right credential %d while over the limit: %d", i, res.status)
		}
	}
	// After a quiet window the right password works again.
	now = now.Add(3 * time.Minute)
	if res := serveVA(h, guesses[0](vaPassword)); !res.app.called {
		t.Errorf("after the window: %d", res.status)
	}
}

// Issue 14 item 1: requests through our own cloudflared all come from
// 127.0.0.1; they are counted by Cf-Connecting-IP, so one tunnel visitor
// guessing does not lock out the others.
func TestVastAuthLimiterKeysTunnelVisitors(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	h := newTestVastAuth(t, func(h *VastAuth) {
		h.FailureLimit = 3
		h.now = func() time.Time { return now }
	})
	viaTunnel := func(visitor, authz string) *http.Request {
		r := req("GET", "/", "Authorization", authz, "Cf-Ray", "8a1b2c-AMS", "Cf-Connecting-IP", visitor)
		r.RemoteAddr = "127.0.0.1:50000"
		return r
	}
	for range 4 {
		serveVA(h, viaTunnel("198.51.100.66", "Bearer wrong"))
	}
	if res := serveVA(h, viaTunnel("198.51.100.66", "Bearer "+vaToken)); res.status != 429 {
		t.Errorf("the guesser with the right token: %d, want 429", res.status)
	}
	if res := serveVA(h, viaTunnel("203.0.113.77", "Bearer "+vaToken)); !res.app.called {
		t.Errorf("another visitor of the tunnel: %d, want served", res.status)
	}
	// A local request without Cf-Ray is not from cloudflared: counted as
	// 127.0.0.1, whatever Cf-Connecting-IP says.
	for range 4 {
		r := req("GET", "/", "Authorization", "Bearer wrong", "Cf-Connecting-IP", "192.0.2.1")
		r.RemoteAddr = "127.0.0.1:50001"
		serveVA(h, r)
	}
	r := req("GET", "/", "Authorization", "Bearer "+vaToken, "Cf-Connecting-IP", "192.0.2.2")
	r.RemoteAddr = "127.0.0.1:50002"
	if res := serveVA(h, r); res.status != 429 {
		t.Errorf("Cf-Connecting-IP without Cf-Ray chose the counter: %d", res.status)
	}
}

func TestVastAuthLimiterSurvivesReload(t *testing.T) {
	cfg := func(h *VastAuth) { h.FailureLimit = 3; h.FailureWindow = confdecl.Duration(time.Hour) }
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
	stateKey, limiterKey := fresh.state.key, fresh.limiter.key
	if err := fresh.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if n, ok := vastauthStates.references(stateKey); ok {
		t.Errorf("session state %s still referenced %d times after every config was cleaned up", stateKey, n)
	}
	if n, ok := vastauthLimiters.references(limiterKey); ok {
		t.Errorf("limiter %s still referenced %d times after every config was cleaned up", limiterKey, n)
	}
	// Cleanup twice, or after a failed Provision, is harmless.
	if err := fresh.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := new(VastAuth).Cleanup(); err != nil {
		t.Fatal(err)
	}
}

// Issue 12: pooled objects log through the logger of the newest config
// holding them, not the first one's (whose sink a reload may close), and
// fall back to the running config's when a newer one is cleaned up (a
// failed reload).
func TestVastAuthPooledLimiterLogsThroughCurrentConfig(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	observed := func() (*zap.Logger, *observer.ObservedLogs) {
		core, logs := observer.New(zapcore.InfoLevel)
		return zap.New(core), logs
	}
	cfg := func(h *VastAuth) {
		h.FailureLimit = 1
		h.FailureWindow = confdecl.Duration(time.Hour)
		h.now = func() time.Time { return now }
	}
	first := newTestVastAuth(t, cfg)
	firstLog, firstLogs := observed()
	first.limiter.entry.logs.add(first, firstLog) // as if its ctx.Logger() were this one

	second := newTestVastAuth(t, cfg) // the reload
	secondLog, secondLogs := observed()
	second.limiter.entry.logs.add(second, secondLog)
	if first.limiter.Value != second.limiter.Value {
		t.Fatal("the reload got another limiter")
	}
	_ = first.Cleanup() // the old config goes; its log sink may be closed now
	serveVA(second, req("GET", "/", "Authorization", "Bearer wrong"))
	if firstLogs.Len() != 0 || secondLogs.FilterMessageSnippet("failure limit").Len() != 1 {
		t.Fatalf("first config's log: %d lines, second's: %d; want the limit logged by the second only", firstLogs.Len(), secondLogs.Len())
	}

	// A third config that fails after Provision is cleaned up: the second's
	// logger is the current one again.
	third := newTestVastAuth(t, cfg)
	thirdLog, thirdLogs := observed()
	third.limiter.entry.logs.add(third, thirdLog)
	_ = third.Cleanup()
	r := req("GET", "/", "Authorization", "Bearer wrong")
	r.RemoteAddr = "198.51.100.200:1"
	serveVA(second, r)
	if thirdLogs.Len() != 0 || secondLogs.FilterMessageSnippet("failure limit").Len() != 2 {
		t.Errorf("after the failed reload: third config %d lines, second %d", thirdLogs.Len(), secondLogs.Len())
	}
}

// Issue 14 item 3: on an AUTH_EXCLUDE port nothing is checked, but our
// credentials are removed, so the app there cannot collect a login that
// opens every other port.
func TestVastAuthStripOnly(t *testing.T) {
	h := newTestVastAuth(t, func(h *VastAuth) { h.StripOnly = true })
	guarded := newTestVastAuth(t, nil)
	session := guarded.auth.IssueSession(time.Now())
	r := req("GET", "/x?a=1&token="+vaToken+"&portal_handoff=h1.abc",
		"Cookie", "app=1; "+vaCookie+"="+session)
	r.Header["Authorization"] = []string{"Bearer " + vaPassword, "Bearer app-key"}
	res := serveVA(h, r)
	if !res.app.called || res.status != 200 {
		t.Fatalf("strip-only: %d", res.status)
	}
	got := res.app.req
	if got.URL.RawQuery != "a=1" || got.Header.Get("Cookie") != "app=1" || strings.Join(got.Header["Authorization"], ",") != "Bearer app-key" {
		t.Errorf("the app saw query %q, Cookie %q, Authorization %q", got.URL.RawQuery, got.Header.Get("Cookie"), got.Header["Authorization"])
	}
	// No credentials, wrong ones: served all the same, nothing counted.
	for range 50 {
		if res := serveVA(h, req("GET", "/", "Authorization", "Bearer wrong")); !res.app.called {
			t.Fatalf("strip-only refused a request: %d", res.status)
		}
	}
	// Not even logout or the handoff endpoint are answered there.
	if res := serveVA(h, req("GET", vastauth.LogoutPath)); !res.app.called {
		t.Errorf("strip-only answered %s itself", vastauth.LogoutPath)
	}
}

// handoffRequest is the dashboard's POST /api/handoff.
func handoffRequest(body string, hdr ...string) *http.Request {
	r := req("POST", "http://portal.example:1111"+vastauth.HandoffPath, hdr...)
	r.Body = httpBody(body)
	r.Header.Set("Content-Type", "application/json")
	return r
}

func httpBody(s string) *readCloser { return &readCloser{strings.NewReader(s)} }

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }

// Issue 10: the Open flow keeps the login: an authenticated page asks for a
// handoff token bound to another origin; the target accepts it once.
func TestVastAuthHandoff(t *testing.T) {
	h := newTestVastAuth(t, nil)
	h.tunnelHosts = func() []string { return []string{"abc.trycloudflare.com"} }
	session := vaCookie + "=" + h.auth.IssueSession(time.Now())
	const target = "https://abc.trycloudflare.com"
	// Issue 20: only the instance's own origins get a token.
	if res := serveVA(h, handoffRequest(`{"origin":"https://evil.example"}`, "Cookie", session, "Sec-Fetch-Site", "same-origin")); res.status != 400 ||
		!strings.Contains(res.rec.Body.String(), "not one of this instance's addresses") {
		t.Errorf("a foreign origin: %d %s", res.status, res.rec.Body.String())
	}

	issue := func(t *testing.T) string {
		t.Helper()
		res := serveVA(h, handoffRequest(`{"origin":"`+target+`"}`, "Cookie", session, "Sec-Fetch-Site", "same-origin"))
		var out struct {
			Token     string `json:"token"`
			ExpiresIn int    `json:"expires_in"`
		}
		if res.status != 200 || res.app.called || json.Unmarshal(res.rec.Body.Bytes(), &out) != nil || out.Token == "" || out.ExpiresIn != 60 {
			t.Fatalf("issue: %d %s", res.status, res.rec.Body.String())
		}
		if res.rec.Header().Get("Cache-Control") != "no-store" || strings.Contains(res.rec.Body.String(), vaToken) {
			t.Fatalf("issue: headers %v", res.rec.Header())
		}
		return out.Token
	}
	// The target: a request through our cloudflared (https per Cf-Visitor).
	open := func(tok string, hdr ...string) vaResult {
		r := req("GET", "http://abc.trycloudflare.com/lab?x=1&portal_handoff="+tok,
			append([]string{"Cf-Ray", "x", "Cf-Visitor", `{"scheme":"https"}`, "Accept", "text/html"}, hdr...)...)
		r.RemoteAddr = "127.0.0.1:40000"
		return serveVA(h, r)
	}

	tok := issue(t)
	res := open(tok)
	if res.status != 302 || res.rec.Header().Get("Location") != "/lab?x=1" || findCookie(t, res.rec, vaCookie) == nil {
		t.Fatalf("redeem: %d, Location %q, Set-Cookie %q", res.status, res.rec.Header().Get("Location"), res.rec.Header().Get("Set-Cookie"))
	}
	// The visitor used https (through the tunnel): the cookie is Secure.
	if !findCookie(t, res.rec, vaCookie).Secure {
		t.Errorf("cookie set for an https visitor without Secure: %q", res.rec.Header().Get("Set-Cookie"))
	}
	if res := serveVA(h, req("GET", "/", "Cookie", findCookie(t, res.rec, vaCookie).String())); !res.app.called {
		t.Errorf("the session from the handoff does not work: %d", res.status)
	}
	// Replayed: here, or on another port of the instance.
	if res := open(tok); res.status != 401 {
		t.Errorf("replay: %d", res.status)
	}
	sibling := newTestVastAuth(t, func(o *VastAuth) { o.StateDir = h.StateDir })
	tok2 := issue(t)
	if res := open(tok2); res.status != 302 {
		t.Fatalf("second token: %d", res.status)
	}
	r := req("GET", "http://abc.trycloudflare.com/?portal_handoff="+tok2, "Cf-Ray", "x", "Cf-Visitor", `{"scheme":"https"}`)
	r.RemoteAddr = "127.0.0.1:40000"
	if res := serveVA(sibling, r); res.status != 401 {
		t.Errorf("replay on another port: %d", res.status)
	}
	// Another origin, or the same host over plain http (a stranger's
	// Cf-Visitor is not believed): refused.
	if res := serveVA(h, req("GET", "http://203.0.113.9:41234/?portal_handoff="+issue(t))); res.status != 401 {
		t.Errorf("foreign origin: %d", res.status)
	}
	fake := req("GET", "http://abc.trycloudflare.com/?portal_handoff="+issue(t), "Cf-Ray", "x", "Cf-Visitor", `{"scheme":"https"}`)
	if res := serveVA(h, fake); res.status != 401 {
		t.Errorf("https claimed by a stranger: %d", res.status)
	}
	// Expired.
	later := time.Now().Add(61 * time.Second)
	old := issue(t)
	h.now = func() time.Time { return later }
	if res := open(old); res.status != 401 {
		t.Errorf("expired: %d", res.status)
	}
	h.now = time.Now

	// The endpoint's refusals.
	for _, tt := range []struct {
		name   string
		r      *http.Request
		status int
		msg    string
	}{
		{"no credentials", handoffRequest(`{"origin":"` + target + `"}`), 401, ""},
		{"GET", req("GET", vastauth.HandoffPath, "Cookie", session), 405, "POST only"},
		{"cross-site", handoffRequest(`{"origin":"`+target+`"}`, "Cookie", session, "Sec-Fetch-Site", "cross-site"), 403, "cross-site request refused"},
		{"foreign Origin", handoffRequest(`{"origin":"`+target+`"}`, "Cookie", session, "Origin", "https://evil.example"), 403, "cross-site request refused"},
		{"form post", func() *http.Request {
			r := handoffRequest("origin=x", "Cookie", session)
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r
		}(), 415, "want Content-Type: application/json"},
		{"bad origin", handoffRequest(`{"origin":"javascript:alert(1)"}`, "Cookie", session), 400, "origin: scheme must be http or https"},
		{"path in origin", handoffRequest(`{"origin":"https://x.example/lab"}`, "Cookie", session), 400, "origin: want scheme://host[:port] only, without a path, query, fragment or user"},
		{"missing origin", handoffRequest(`{}`, "Cookie", session), 400, "origin: missing"},
		{"unknown field", handoffRequest(`{"origin":"https://x.example","x":1}`, "Cookie", session), 400, `body: want {"origin": "https://…"}: json: unknown field "x"`},
		{"two objects", handoffRequest(`{"origin":"https://x.example"}{}`, "Cookie", session), 400, "body: want one JSON object"},
		{"too large", handoffRequest(`{"origin":"`+strings.Repeat("a", 5000)+`"}`, "Cookie", session), 400, "body: over 4096 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := serveVA(h, tt.r)
			if res.status != tt.status || res.app.called {
				t.Fatalf("%d (app %v), want %d: %s", res.status, res.app.called, tt.status, res.rec.Body.String())
			}
			if tt.msg != "" {
				var body struct{ Error string }
				if err := json.Unmarshal(res.rec.Body.Bytes(), &body); err != nil || !strings.HasPrefix(body.Error, tt.msg) {
					t.Errorf("error %q, want %q", body.Error, tt.msg)
				}
			}
		})
	}
}

func TestVastAuthGeneratedToken(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("VA_TEST_EMPTY", "")
	mk := func() *VastAuth {
		h := &VastAuth{Config: vastauth.Config{SecretSource: vastauth.SecretSource{Secrets: []string{"{env.VA_TEST_EMPTY}", "{env.VA_TEST_UNSET}"}, StateDir: dir}, CookieName: vaCookie}}
		provision(t, h)
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
	// A restart loads the same token and salt, so cookies stay valid.
	session := h.auth.IssueSession(time.Now())
	_ = h.Cleanup()
	h2 := mk()
	if res := serveVA(h2, req("GET", "/", "Cookie", vaCookie+"="+session)); !res.app.called {
		t.Errorf("session from before the restart rejected: %d", res.status)
	}
}

func TestVastAuthProvisionErrors(t *testing.T) {
	notDir := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		mod  func(*VastAuth)
		want string
	}{
		{"no secret and no state dir", func(h *VastAuth) { h.Secrets = []string{""}; h.StateDir = notDir },
			`vastauth: no secret is set, and the generated token is unavailable: state_dir "` + notDir + `"`},
		{"salt in a file", func(h *VastAuth) { h.StateDir = notDir }, `vastauth: state_dir "` + notDir + `"`},
		{"cookie name", func(h *VastAuth) { h.CookieName = "bad name;" }, `vastauth: cookie_name: "bad name;": not a cookie name`},
		{"username", func(h *VastAuth) { h.Username = "a:b" }, `vastauth: username: "a:b": must be non-empty, without ':' or line breaks`},
		{"realm", func(h *VastAuth) { h.Realm = `x"y` }, `vastauth: realm: "x\"y": no quotes`},
		{"failure limit", func(h *VastAuth) { h.FailureLimit = -1 }, "vastauth: failure_limit: must be at least 1, got -1"},
		{"session ttl", func(h *VastAuth) { h.SessionTTL = confdecl.Duration(10 * time.Millisecond) }, "vastauth: session_ttl: must be at least 1s, got 10ms"},
		{"failure window", func(h *VastAuth) { h.FailureWindow = confdecl.Duration(time.Millisecond) }, "vastauth: failure_window: must be at least 1s, got 1ms"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := &VastAuth{Config: vastauth.Config{SecretSource: vastauth.SecretSource{Secrets: []string{"s3cret-long-enough"}, StateDir: t.TempDir()}, CookieName: vaCookie}}
			tt.mod(h)
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			err := h.Provision(ctx)
			if cerr := h.Cleanup(); cerr != nil {
				t.Errorf("Cleanup after a failed Provision: %v", cerr)
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("Provision = %v, want %q…", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error reveals the secret: %v", err)
			}
		})
	}
}

// Issue 12: the module reads no environment variable unless the config
// names it. A bare config ignores WEB_PASSWORD, VAST_CONTAINERLABEL,
// WEB_USERNAME and PORTAL_STATE_DIR (it used to default to all four).
func TestVastAuthReadsNoEnvironmentImplicitly(t *testing.T) {
	t.Setenv("WEB_PASSWORD", "from-env-password-abcdef")
	t.Setenv("OPEN_BUTTON_TOKEN", "from-env-token-abcdef")
	t.Setenv("WEB_USERNAME", "envuser")
	t.Setenv("VAST_CONTAINERLABEL", "C.7")
	envState := t.TempDir()
	t.Setenv("PORTAL_STATE_DIR", envState)
	dir := t.TempDir()
	h := &VastAuth{Config: vastauth.Config{SecretSource: vastauth.SecretSource{StateDir: dir}}}
	provision(t, h)
	if h.cfg.Username != "vastai" || h.cfg.CookieName != "_auth_token" || h.cfg.Realm != "Instance Portal" {
		t.Errorf("defaults: %+v", h.cfg)
	}
	for _, pw := range []string{"from-env-password-abcdef", "from-env-token-abcdef"} {
		if res := serveVA(h, req("GET", "/", "Authorization", "Bearer "+pw)); res.app.called {
			t.Errorf("a bare config accepted %s from the environment", pw)
		}
	}
	if _, err := vastauth.ReadToken(dir); err != nil {
		t.Errorf("no generated token in the configured state_dir: %v", err)
	}
	if entries, _ := os.ReadDir(envState); len(entries) != 0 {
		t.Errorf("PORTAL_STATE_DIR was used: %d entries", len(entries))
	}
	// Named explicitly, placeholders work.
	named := &VastAuth{Config: vastauth.Config{SecretSource: vastauth.SecretSource{Secrets: []string{"{env.OPEN_BUTTON_TOKEN}"}, StateDir: t.TempDir()},
		Username: "{env.WEB_USERNAME}", CookieName: "{env.VAST_CONTAINERLABEL}_auth_token"}}
	provision(t, named)
	if named.cfg.Username != "envuser" || named.cfg.CookieName != "C.7_auth_token" {
		t.Errorf("placeholders: %+v", named.cfg)
	}
	if res := serveVA(named, req("GET", "/", "Authorization", basicAuth("envuser", "from-env-token-abcdef"))); !res.app.called {
		t.Errorf("named secret refused: %d", res.status)
	}
	// The JSON form carries no secret: only what was configured.
	b, _ := json.Marshal(named)
	if strings.Contains(string(b), "from-env") || !strings.Contains(string(b), `"secrets":["{env.OPEN_BUTTON_TOKEN}"]`) {
		t.Errorf("config JSON: %s", b)
	}
}

// Issue 14 item 10: the start-up line showed the first four characters of
// WEB_PASSWORD. It now says where the secrets come from, and nothing of
// them.
func TestVastAuthStartupLineShowsNoPartOfASecret(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	h := newTestVastAuth(t, func(h *VastAuth) { h.Username = "startup-line-user" })
	h.logger = zap.New(core)
	announced.Lock()
	announced.fingerprint = [32]byte{}
	announced.Unlock()
	h.announce()
	if logs.Len() != 1 {
		t.Fatalf("%d lines", logs.Len())
	}
	line, _ := json.Marshal(logs.All()[0].ContextMap())
	text := logs.All()[0].Message + string(line)
	// (vaToken begins with "open", which the message says anyway.)
	for secret, from := range map[string]int{vaPassword: 3, vaToken: 5} {
		for n := from; n <= len(secret); n++ {
			if strings.Contains(text, secret[:n]) {
				t.Fatalf("the start-up line shows %q of a secret: %s", secret[:n], text)
			}
		}
	}
	if strings.Contains(text, "…") {
		t.Errorf("the start-up line masks something: %s", text)
	}
	if !strings.Contains(text, "{env.VA_TEST_WEB_PASSWORD}") || !strings.Contains(text, "startup-line-user") {
		t.Errorf("the start-up line does not say where the secrets come from: %s", text)
	}
}

func TestVastAuthCaddyfile(t *testing.T) {
	good := `vastauth {
		username admin
		secrets {env.WEB_PASSWORD} {env.OPEN_BUTTON_TOKEN}
		secrets literal
		cookie_name {env.VAST_CONTAINERLABEL}_auth_token
		state_dir /var/lib/portal
		realm "Instance Portal"
		session_ttl 1d
		failure_limit 10
		failure_window 30s
		max_tracked_clients 500
		strip_only
	}`
	var h VastAuth
	parseCaddyfile(t, &h, good)
	want := VastAuth{Config: vastauth.Config{
		SecretSource: vastauth.SecretSource{Secrets: []string{"{env.WEB_PASSWORD}", "{env.OPEN_BUTTON_TOKEN}", "literal"}, StateDir: "/var/lib/portal"},
		Username:     "admin", CookieName: "{env.VAST_CONTAINERLABEL}_auth_token", Realm: "Instance Portal",
		SessionTTL: confdecl.Duration(24 * time.Hour), FailureLimit: 10, FailureWindow: confdecl.Duration(30 * time.Second),
		MaxTrackedClients: 500, StripOnly: true,
	}}
	gotJSON, _ := json.Marshal(h)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Errorf("parsed\n%s\nwant\n%s", gotJSON, wantJSON)
	}
	var bare VastAuth
	if err := bare.UnmarshalCaddyfile(caddyfile.NewTestDispenser("vastauth")); err != nil || bare.Secrets != nil {
		t.Errorf("bare directive: %v, %+v", err, bare)
	}

	for _, tt := range []struct{ name, in, want string }{
		{"argument", "vastauth extra", "wrong argument count or unexpected line ending after 'extra', at Testfile:1"},
		{"unknown", "vastauth {\n bogus 1\n}", `vastauth: unrecognized option "bogus", at Testfile:2`},
		{"old singular secret", "vastauth {\n secret x\n}", `vastauth: unrecognized option "secret", at Testfile:2`},
		{"duplicate", "vastauth {\n username a\n username b\n}", `vastauth: duplicate option "username", at Testfile:3`},
		{"username arity", "vastauth {\n username a b\n}", "wrong argument count or unexpected line ending after 'b', at Testfile:2"},
		{"secrets arity", "vastauth {\n secrets\n}", "wrong argument count or unexpected line ending after 'secrets', at Testfile:2"},
		{"ttl", "vastauth {\n session_ttl soon\n}", `vastauth: session_ttl "soon": want a duration such as 500ms, 2s or 7d, at Testfile:2`},
		{"limit", "vastauth {\n failure_limit -1\n}", `vastauth: failure_limit "-1": want an integer of at least 0, at Testfile:2`},
		{"old two-argument limit", "vastauth {\n failure_limit 5 1m\n}", "wrong argument count or unexpected line ending after '1m', at Testfile:2"},
		{"window", "vastauth {\n failure_window never\n}", `vastauth: failure_window "never": want a duration such as 500ms, 2s or 7d, at Testfile:2`},
		{"strip_only value", "vastauth {\n strip_only maybe\n}", "vastauth: strip_only: want no argument, true or false, at Testfile:2"},
		{"nested block", "vastauth {\n realm x {\n a\n }\n}", `vastauth: option "realm" takes no block, at Testfile:2`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var h VastAuth
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.in))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error %v, want %q", err, tt.want)
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

// portalToken runs `caddy portal token`, as registered with package
// portalcmd, with OPEN_BUTTON_TOKEN, WEB_PASSWORD and PORTAL_STATE_DIR set
// from env ("" when absent) and returns what it printed, without the newline.
func portalToken(t *testing.T, env map[string]string) string {
	t.Helper()
	for _, k := range []string{"OPEN_BUTTON_TOKEN", "WEB_PASSWORD", "PORTAL_STATE_DIR"} {
		t.Setenv(k, env[k])
	}
	for _, c := range portalcmd.Subcommands() {
		if c.Name() != "token" {
			continue
		}
		var b strings.Builder
		c.SetOut(&b)
		c.SetArgs(nil)
		if err := c.Execute(); err != nil {
			t.Fatal(err)
		}
		return strings.TrimSuffix(b.String(), "\n")
	}
	t.Fatal("`caddy portal token` is not registered")
	return ""
}

// The token `caddy portal token` prints, generated when no secret is set,
// is the one the handler, configured the way the adapter does, accepts.
func TestPortalTokenCommand(t *testing.T) {
	dir := t.TempDir()
	generated := portalToken(t, map[string]string{"PORTAL_STATE_DIR": dir})
	h := &VastAuth{Config: vastauth.Config{SecretSource: vastauth.SecretSource{Secrets: []string{"{env.VA_TEST_UNSET_1}"}, StateDir: dir}, CookieName: vaCookie}}
	provision(t, h)
	if res := serveVA(h, req("GET", "/", "Authorization", "Bearer "+generated)); !res.app.called {
		t.Errorf("the printed token is not the one the handler accepts: %d", res.status)
	}
}

// Issue 12: the command and the module agree on white space around a
// secret (the command printed what the module did not accept).
func TestPortalTokenAgreesWithModuleOnWhitespace(t *testing.T) {
	printed := portalToken(t, map[string]string{"OPEN_BUTTON_TOKEN": "  spaced-token-0123456789 \n", "PORTAL_STATE_DIR": t.TempDir()})
	t.Setenv("VA_TEST_WS_TOKEN", "  spaced-token-0123456789 \n")
	h := &VastAuth{Config: vastauth.Config{SecretSource: vastauth.SecretSource{Secrets: []string{"{env.VA_TEST_WS_TOKEN}"}, StateDir: t.TempDir()}}}
	provision(t, h)
	if res := serveVA(h, req("GET", "/", "Authorization", "Bearer "+printed)); !res.app.called {
		t.Errorf("the module refuses the printed token %q: %d", printed, res.status)
	}
	if printed != "spaced-token-0123456789" {
		t.Errorf("printed %q", printed)
	}
}

// The access-log filter, through Caddy's filter encoder as the adapter
// configures it.
func TestVastAuthRedactFilter(t *testing.T) {
	t.Setenv("VA_TEST_REDACT", vaPassword)
	f := &VastAuthRedact{SecretSource: vastauth.SecretSource{Secrets: []string{"{env.VA_TEST_REDACT}"}, StateDir: t.TempDir()}}
	ctx := caddyContext(t)
	if err := f.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"/lab?Token=abc&x=1":         "/lab?Token=REDACTED&x=1",
		"/lab?token[]=abc":           "/lab?token[]=REDACTED",
		"/lab;token=abc":             "/lab;token=REDACTED",
		"/lab?q=%23token=abc":        "/lab?q=REDACTED",
		"/lab?pw=" + vaPassword:      "/lab?pw=REDACTED",
		"/lab?portal_handoff=h1.xyz": "/lab?portal_handoff=REDACTED",
	} {
		if got := f.Filter(zap.String("uri", in)).String; got != want {
			t.Errorf("uri %q → %q, want %q", in, got, want)
		}
	}
	hdr := caddyhttp.LoggableHTTPHeader{Header: http.Header{
		"X-Api-Key":  {vaPassword},
		"User-Agent": {"curl/8"},
		"Referer":    {"http://x/?token=abc&y=1"},
	}}
	out := f.Filter(zap.Object("headers", hdr))
	got, ok := out.Interface.(caddyhttp.LoggableHTTPHeader)
	if !ok || got.Header.Get("X-Api-Key") != "REDACTED" || got.Header.Get("User-Agent") != "curl/8" || got.Header.Get("Referer") != "http://x/?token=REDACTED&y=1" {
		t.Errorf("headers → %+v", out.Interface)
	}
	if hdr.Header.Get("X-Api-Key") != vaPassword {
		t.Error("the filter changed the request's own headers")
	}
	var c VastAuthRedact
	if err := c.UnmarshalCaddyfile(caddyfile.NewTestDispenser("vastauth_redact {\n secrets {env.A}\n state_dir /x\n}")); err != nil ||
		strings.Join(c.Secrets, ",") != "{env.A}" || c.StateDir != "/x" {
		t.Errorf("Caddyfile: %+v, %v", c, err)
	}
}

// The portal's internal server answers /api/handoff with a JSON 404 (the
// route table lists it), so a dashboard reached
// without vastauth in front knows to open the plain link.
func TestHandoffElsewhereRoute(t *testing.T) {
	var warns []caddyconfig.Warning
	b, err := json.Marshal(portalRouteAt(vastauth.HandoffPath).caddyRoute(testPlan(t, "localhost:1111:11111:/:Instance Portal", nil), &warns))
	if err != nil || len(warns) != 0 {
		t.Fatal(err, warns)
	}
	for _, want := range []string{`"path":["/api/handoff"]`, `"status_code":404`, `"Content-Type":["application/json"]`, `"terminal":true`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("route lacks %s: %s", want, b)
		}
	}
}

// Issue 20: a handoff token outlived its session's logout. The token names
// the session that asked for it; logging that session out revokes it.
func TestLogoutRevokesTheSessionsHandoffTokens(t *testing.T) {
	h := newTestVastAuth(t, nil)
	h.tunnelHosts = func() []string { return []string{"abc.trycloudflare.com"} }
	cookie := vaCookie + "=" + h.auth.IssueSession(time.Now())
	other := vaCookie + "=" + h.auth.IssueSession(time.Now())
	issue := func(session string) string {
		t.Helper()
		res := serveVA(h, handoffRequest(`{"origin":"https://abc.trycloudflare.com"}`, "Cookie", session, "Sec-Fetch-Site", "same-origin"))
		var out struct{ Token string }
		if res.status != 200 || json.Unmarshal(res.rec.Body.Bytes(), &out) != nil || out.Token == "" {
			t.Fatalf("issue: %d %s", res.status, res.rec.Body.String())
		}
		return out.Token
	}
	redeem := func(tok string) int {
		r := req("GET", "http://abc.trycloudflare.com/lab?portal_handoff="+tok, "Cf-Ray", "x", "Cf-Visitor", `{"scheme":"https"}`, "Accept", "text/html")
		r.RemoteAddr = "127.0.0.1:40000"
		return serveVA(h, r).status
	}
	mine, theirs := issue(cookie), issue(other)
	if res := serveVA(h, req("POST", vastauth.LogoutPath, "Cookie", cookie, "Sec-Fetch-Site", "same-origin")); res.status != 200 {
		t.Fatalf("logout: %d", res.status)
	}
	if got := redeem(mine); got != 401 {
		t.Errorf("the logged-out session's handoff token: %d, want 401", got)
	}
	if got := redeem(theirs); got != 302 {
		t.Errorf("another session's handoff token: %d, want 302", got)
	}
}

func TestValidatingArgs(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{[]string{"caddy", "validate", "--adapter", "portal_yaml", "--config", "p.yaml"}, true},
		{[]string{"caddy", "adapt", "--adapter", "portal_yaml", "--validate"}, true},
		{[]string{"caddy", "adapt", "--adapter", "portal_yaml"}, false},
		{[]string{"caddy", "run", "--adapter", "portal_yaml", "--config", "validate"}, false},
		{[]string{"caddy.test", "-test.run", "X"}, false},
		{[]string{"caddy"}, false},
	} {
		if got := validatingArgs(c.args); got != c.want {
			t.Errorf("validatingArgs(%q) = %v, want %v", c.args, got, c.want)
		}
	}
}
