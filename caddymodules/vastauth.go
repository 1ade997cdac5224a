package caddymodules

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/instanceportal/portal/portalconfig"
	"github.com/instanceportal/portal/vastauth"
)

func init() {
	caddy.RegisterModule(VastAuth{})
}

// VastAuth is the gate in front of every app: it lets a request through
// when it carries one of the secrets (as the `token` query parameter, the
// session cookie, `Authorization: Bearer`, or `Authorization: Basic` with
// the username), answers 401 with a Basic challenge otherwise, and 429 once
// a client has presented too many wrong credentials. Our credentials are
// removed before the request goes on, so the app never sees them.
//
// A valid `?token=` or Basic login earns a session cookie holding a signed,
// expiring value (not the secret). A browser navigation with `?token=` is
// redirected to the same URL without it. These paths pass without
// credentials: /.well-known/acme-challenge/*, /.well-known/change-password,
// /.well-known/security.txt, /security.txt, /manifest.json,
// /manifest.webmanifest, /site.webmanifest and /portal-resolver.
// /.portal/logout clears the cookie.
//
// Secrets are resolved from placeholders at Provision, so that the running
// config (served by the admin API to any local user) never holds them. With
// no secret set, a random token is generated once and kept under state_dir.
//
// Placeholder set on success: {http.auth.user.id} (the username).
type VastAuth struct {
	// Username for Basic logins. Placeholders are resolved.
	// Default: {env.WEB_USERNAME}, else "vastai".
	Username string `json:"username,omitempty"`

	// Secrets accepted as credentials, usually placeholders such as
	// {env.WEB_PASSWORD}, resolved at Provision; empty ones are ignored.
	// Default: {env.WEB_PASSWORD} and {env.OPEN_BUTTON_TOKEN}. If none is
	// set, the token generated under state_dir is used.
	Secrets []string `json:"secrets,omitempty"`

	// CookieName is the session cookie. Placeholders are resolved.
	// Default: {env.VAST_CONTAINERLABEL}_auth_token.
	CookieName string `json:"cookie_name,omitempty"`

	// StateDir holds the generated token (file auth_token, mode 0600).
	// Default: {env.PORTAL_STATE_DIR}, else /var/lib/portal.
	StateDir string `json:"state_dir,omitempty"`

	// Realm is shown by the browser's login prompt. Default: "Instance Portal".
	Realm string `json:"realm,omitempty"`

	// SessionTTL is the lifetime of a session cookie. Default: 7d.
	SessionTTL caddy.Duration `json:"session_ttl,omitempty"`

	// FailureLimit is how many wrong credentials one client (IPv4 address or
	// IPv6 /64) may present within FailureWindow before further failures are
	// answered with 429. Default: 20.
	FailureLimit int `json:"failure_limit,omitempty"`

	// FailureWindow is the sliding window of FailureLimit. Default: 1m.
	FailureWindow caddy.Duration `json:"failure_window,omitempty"`

	// MaxTrackedClients bounds the memory of the failure counters.
	// Default: 10000.
	MaxTrackedClients int `json:"max_tracked_clients,omitempty"`

	username, cookieName, realm string
	challenge                   string // the WWW-Authenticate value
	auth                        *vastauth.Authenticator
	limiter                     *vastauth.Limiter
	limiterKey                  string // pool key; "" until the limiter is loaded
	login                       loginInfo
	logger                      *zap.Logger
	now                         func() time.Time // the clock; tests replace it
}

// CaddyModule returns the Caddy module information.
func (VastAuth) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.vastauth",
		New: func() caddy.Module { return new(VastAuth) },
	}
}

// failureLimiters keeps each limiter across config reloads, so that a
// reload does not hand a guesser a fresh allowance. Handlers with the same
// limiter settings share one, on every port: a client's failures count
// wherever it guesses.
var failureLimiters = caddy.NewUsagePool()

// pooledLimiter lets a Limiter live in the UsagePool; it holds no
// goroutine or file, so there is nothing to destruct.
type pooledLimiter struct{ *vastauth.Limiter }

func (pooledLimiter) Destruct() error { return nil }

// Provision resolves placeholders, fills defaults, loads or generates the
// secret and attaches the shared failure limiter.
func (h *VastAuth) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.now == nil {
		h.now = time.Now
	}
	repl := caddy.NewReplacer()
	resolve := func(v, def string) string {
		if v = repl.ReplaceAll(v, ""); v == "" {
			v = repl.ReplaceAll(def, "")
		}
		return v
	}
	h.username = resolve(h.Username, "{env.WEB_USERNAME}")
	if h.username == "" {
		h.username = portalconfig.DefaultWebUsername
	}
	h.cookieName = resolve(h.CookieName, "{env.VAST_CONTAINERLABEL}_auth_token")
	h.realm = h.Realm
	if h.realm == "" {
		h.realm = portalconfig.PortalAppName
	}
	h.challenge = `Basic realm="` + h.realm + `", charset="UTF-8"`
	stateDir := resolve(h.StateDir, "{env.PORTAL_STATE_DIR}")
	if stateDir == "" {
		stateDir = portalconfig.DefaultStateDir
	}

	secretSpecs := h.Secrets
	if secretSpecs == nil {
		secretSpecs = []string{"{env.WEB_PASSWORD}", "{env.OPEN_BUTTON_TOKEN}"}
	}
	var secrets []string
	for _, s := range secretSpecs {
		if v := repl.ReplaceAll(s, ""); v != "" {
			secrets = append(secrets, v)
		}
	}
	source := "configured secrets"
	if len(secrets) == 0 {
		tok, created, err := vastauth.LoadOrCreateToken(stateDir)
		if err != nil {
			return fmt.Errorf("vastauth: no secret is set and the generated token is unavailable: %w", err)
		}
		secrets = []string{tok}
		source = "token file " + vastauth.TokenPath(stateDir)
		if created {
			source = "new token file " + vastauth.TokenPath(stateDir)
		}
	}
	auth, err := vastauth.New(h.username, secrets, time.Duration(h.SessionTTL))
	if err != nil {
		return fmt.Errorf("vastauth: %w", err)
	}
	h.auth = auth

	cfg := vastauth.LimiterConfig{
		Limit:      h.FailureLimit,
		Window:     time.Duration(h.FailureWindow),
		MaxClients: h.MaxTrackedClients,
	}
	key := fmt.Sprintf("vastauth/%d/%d/%d", cfg.Limit, cfg.Window, cfg.MaxClients)
	val, _, err := failureLimiters.LoadOrNew(key, func() (caddy.Destructor, error) {
		l, err := vastauth.NewLimiter(cfg)
		return pooledLimiter{l}, err
	})
	if err != nil {
		return fmt.Errorf("vastauth: %w", err)
	}
	h.limiterKey = key
	h.limiter = val.(pooledLimiter).Limiter

	h.login = describeLogin(h.username, h.cookieName, secrets, source)
	return nil
}

// loginInfo is what the start-up line says about logging in: never a
// secret, only masks of them and a digest that tells one login from another.
type loginInfo struct {
	fingerprint [sha256.Size]byte
	user        string
	masked      []string
	source      string
	cookie      string
}

func describeLogin(user, cookie string, secrets []string, source string) loginInfo {
	li := loginInfo{user: user, source: source, cookie: cookie, masked: make([]string, len(secrets))}
	fp := sha256.New()
	fmt.Fprintf(fp, "%q %q %q", user, cookie, source)
	for i, s := range secrets {
		fp.Write([]byte{0})
		fp.Write([]byte(s))
		li.masked[i] = vastauth.Mask(s)
	}
	fp.Sum(li.fingerprint[:0])
	return li
}

// announced is the login last logged, so that a config with a vastauth
// handler on every port logs one line, not one per port.
var announced struct {
	sync.Mutex
	fingerprint [sha256.Size]byte
}

// announce logs, once per distinct login, how to log in. Secrets are masked.
func (h *VastAuth) announce() {
	announced.Lock()
	defer announced.Unlock()
	if announced.fingerprint == h.login.fingerprint {
		return
	}
	announced.fingerprint = h.login.fingerprint
	h.logger.Info("authentication on: open an app with ?token=<secret>, or log in as the user with a secret as password; `caddy portal token` prints the token",
		zap.String("user", h.login.user),
		zap.Strings("secrets", h.login.masked),
		zap.String("from", h.login.source),
		zap.String("cookie", h.login.cookie))
}

// Validate checks the resolved settings, then logs how to log in.
func (h *VastAuth) Validate() error {
	if h.username == "" || strings.ContainsAny(h.username, ":\r\n") {
		return fmt.Errorf("vastauth: username %q: must be non-empty without ':' or line breaks", h.username)
	}
	if !validCookieName(h.cookieName) {
		return fmt.Errorf("vastauth: cookie_name %q: not a valid cookie name (RFC 6265 token characters only)", h.cookieName)
	}
	for _, r := range h.realm {
		if r == '"' || r == '\\' || r < 0x20 || r == 0x7f {
			return fmt.Errorf("vastauth: realm %q: no quotes, backslashes or control characters", h.realm)
		}
	}
	if h.SessionTTL < 0 {
		return fmt.Errorf("vastauth: session_ttl must not be negative")
	}
	h.announce()
	return nil
}

// validCookieName: RFC 6265 cookie-name is an RFC 2616 token.
func validCookieName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

// Cleanup releases this config's hold on the shared limiter. It tolerates a
// Provision that failed before the limiter was loaded.
func (h *VastAuth) Cleanup() error {
	if h.limiterKey == "" {
		return nil
	}
	_, err := failureLimiters.Delete(h.limiterKey)
	h.limiterKey = ""
	return err
}

var (
	errNoCredentials    = errors.New("vastauth: no credentials")
	errWrongCredentials = errors.New("vastauth: wrong credentials")
	errTooManyFailures  = errors.New("vastauth: too many wrong credentials from this client")
)

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *VastAuth) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if r.URL.Path == vastauth.LogoutPath {
		return h.logout(w, r)
	}
	now := h.now()
	creds := vastauth.Extract(r, h.cookieName)
	res := h.auth.Check(creds, now)
	if !vastauth.IsPublicPath(r.URL.Path) {
		switch res.Verdict {
		case vastauth.NoCredentials:
			return h.deny(w, r, creds, errNoCredentials)
		case vastauth.Rejected:
			if ok, wait := h.limiter.Fail(clientAddr(r), now); !ok {
				w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)))
				return caddyhttp.Error(http.StatusTooManyRequests, errTooManyFailures)
			}
			return h.deny(w, r, creds, errWrongCredentials)
		}
		if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
			repl.Set("http.auth.user.id", h.username)
		}
		if res.IssueSession() {
			http.SetCookie(w, h.sessionCookie(r, h.auth.IssueSession(now), int(h.auth.TTL()/time.Second)))
		}
		if creds.HasToken && isNavigation(r) {
			if loc, ok := locationWithoutToken(r); ok {
				w.Header().Set("Location", loc)
				w.Header().Set("Cache-Control", "no-store")
				w.WriteHeader(http.StatusFound)
				return nil
			}
		}
	}
	stripCredentials(r, creds, res, h.cookieName)
	return next.ServeHTTP(w, r)
}

// deny answers 401 with a Basic challenge, so a browser shows its login
// prompt. A cookie that did not authenticate is cleared, so the browser
// stops presenting it.
func (h *VastAuth) deny(w http.ResponseWriter, r *http.Request, creds vastauth.Credentials, err error) error {
	w.Header().Set("WWW-Authenticate", h.challenge)
	if creds.HasCookie {
		http.SetCookie(w, h.sessionCookie(r, "", -1))
	}
	return caddyhttp.Error(http.StatusUnauthorized, err)
}

// sessionCookie is our cookie with value v; maxAge < 0 deletes it.
func (h *VastAuth) sessionCookie(r *http.Request, v string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     h.cookieName,
		Value:    v,
		Path:     "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
		Secure:   r.TLS != nil,
	}
}

// logout clears the session cookie and says so. A password typed into the
// browser's own prompt is remembered by the browser until it closes, which
// the page mentions, since the browser will send it again.
func (h *VastAuth) logout(w http.ResponseWriter, r *http.Request) error {
	http.SetCookie(w, h.sessionCookie(r, "", -1))
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	realm := html.EscapeString(h.realm)
	_, err := fmt.Fprintf(w, logoutPage, realm, realm)
	if err != nil {
		// The client went away; nothing is wrong with the server.
		h.logger.Debug("writing logout page", zap.Error(err))
	}
	return nil
}

const logoutPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Logged out · %s</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:34em;margin:4em auto;padding:0 1em;color:#222}</style>
</head><body>
<h1>Logged out</h1>
<p>Your %s session cookie has been cleared.</p>
<p>If you logged in through the browser's password prompt, the browser keeps that password until it is closed.</p>
<p><a href="/">Log in again</a></p>
</body></html>
`

// isNavigation: a browser loading a page, which we may redirect.
func isNavigation(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	return r.Header.Get("Sec-Fetch-Dest") == "document" ||
		strings.Contains(r.Header.Get("Accept"), "text/html")
}

// locationWithoutToken is the request's own URL without the token
// parameter, as a relative reference. A path that a browser would read as
// another host ("//evil.example/") is not redirected at all.
func locationWithoutToken(r *http.Request) (string, bool) {
	p := r.URL.EscapedPath()
	if p == "" {
		p = "/"
	}
	if p[0] != '/' || strings.HasPrefix(p, "//") || strings.HasPrefix(p, `/\`) {
		return "", false
	}
	if q, _ := vastauth.StripQueryParam(r.URL.RawQuery, "token"); q != "" {
		p += "?" + q
	}
	return p, true
}

// stripCredentials removes what we consumed: the token parameter, our
// cookie, and an Authorization header that carried our secret. An app's
// own cookies, parameters and Authorization pass untouched.
func stripCredentials(r *http.Request, creds vastauth.Credentials, res vastauth.Result, cookieName string) {
	if creds.HasToken {
		q, _ := vastauth.StripQueryParam(r.URL.RawQuery, "token")
		r.URL.RawQuery = q
		r.URL.ForceQuery = false
		if i := strings.IndexByte(r.RequestURI, '?'); i >= 0 {
			r.RequestURI = r.RequestURI[:i]
			if q != "" {
				r.RequestURI += "?" + q
			}
		}
	}
	if creds.HasCookie {
		if rest, _ := vastauth.StripCookie(r.Header["Cookie"], cookieName); len(rest) > 0 {
			r.Header["Cookie"] = rest
		} else {
			delete(r.Header, "Cookie")
		}
	}
	if res.AuthorizationIsOurs() {
		r.Header.Del("Authorization")
	}
}

// clientAddr is the address of the connection (never a forwarded header,
// which a client could set to anything).
func clientAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{} // e.g. a unix socket: all such clients share one counter
	}
	return ap.Addr()
}

// Interface guards
var (
	_ caddy.Provisioner           = (*VastAuth)(nil)
	_ caddy.Validator             = (*VastAuth)(nil)
	_ caddy.CleanerUpper          = (*VastAuth)(nil)
	_ caddyhttp.MiddlewareHandler = (*VastAuth)(nil)
)
