package caddymodules

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/instanceportal/portal/portalconfig"
	"github.com/instanceportal/portal/tunnels"
	"github.com/instanceportal/portal/vastauth"
	"github.com/instanceportal/portal/web"
)

func init() {
	caddy.RegisterModule(VastAuth{})
}

// VastAuth is the gate in front of every app (http.handlers.vastauth). It
// lets a request through when it carries one of the secrets or a handoff
// token, answers 401 (with a login page for a browser) otherwise, and 429
// once a client has presented too many wrong credentials; it removes our
// credentials before the request goes on, and answers /.portal/logout and
// POST /api/handoff itself. With strip_only (the portal's AUTH_EXCLUDE
// ports) it checks nothing and only removes our credentials. The decision
// lives in package vastauth; this type is its Caddy wiring.
//
// docs/vastauth.md is the one description of what it accepts, the public
// paths, the brute-force limit, sessions, handoff tokens and the settings;
// SECURITY.md names the tests that hold its promises.
//
// Secrets are resolved from placeholders at Provision, so that the running
// config (served by the admin API to any local user) never holds them.
//
// Placeholder set on success: {http.auth.user.id} (the username).
type VastAuth struct {
	vastauth.Config

	cfg       vastauth.Config // resolved, defaults filled
	challenge string          // the WWW-Authenticate value
	secrets   *vastauth.SecretSet
	auth      *vastauth.Authenticator
	limiter   *shared[*vastauth.Limiter]
	state     *shared[*authState]
	login     loginInfo
	logger    *zap.Logger
	now       func() time.Time // the clock; tests replace it
	// tunnelHosts lists the running tunnels' host names (nil without a
	// tunnels app): origins handoff tokens may be issued for.
	tunnelHosts func() []string
}

// CaddyModule returns the Caddy module information.
func (VastAuth) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.vastauth",
		New: func() caddy.Module { return new(VastAuth) },
	}
}

// What must survive a config reload, shared by the handlers on every port:
// the failure limiters (a reload must not hand a guesser a fresh
// allowance), keyed by their settings, and the session state of each state
// directory (salt, revoked sessions, spent handoff tokens), so that a
// handoff token spent on one port or before a reload stays spent
// everywhere.
var (
	vastauthLimiters = newSharedPool[*vastauth.Limiter]("http.handlers.vastauth")
	vastauthStates   = newSharedPool[*authState]("http.handlers.vastauth")
)

// fail counts a failure and logs, through the current config's logger,
// when a client reaches the limit.
func (h *VastAuth) fail(client netip.Addr, now time.Time) (bool, time.Duration) {
	ok, wait, reached := h.limiter.Value.Fail(client, now)
	if reached {
		limit, window, _ := h.limiter.Value.Settings()
		h.limiter.Log.Warn("client reached the failure limit; its passwords and tokens are refused unchecked until the window passes",
			zap.Stringer("client", vastauth.ClientKey(client)), zap.Int("limit", limit), zap.Duration("window", window))
	}
	return ok, wait
}

// authState is the session state of one state directory.
type authState struct {
	store    vastauth.SessionStore
	handoffs *vastauth.HandoffLedger
}

// Provision resolves placeholders, fills defaults, validates, loads or
// generates the secret and attaches the shared limiter and session state.
func (h *VastAuth) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if app, err := ctx.AppIfConfigured("tunnels"); err == nil {
		if ta, ok := app.(*TunnelsApp); ok {
			h.tunnelHosts = func() []string { return tunnelHosts(ta.Manager()) }
		}
	}
	if h.now == nil {
		h.now = time.Now
	}
	repl := caddy.NewReplacer()
	expand := func(s string) string { return repl.ReplaceAll(s, "") }
	cfg := h.Config
	cfg.Username, cfg.CookieName, cfg.StateDir = expand(cfg.Username), expand(cfg.CookieName), expand(cfg.StateDir)
	cfg = cfg.WithDefaults()
	if err := cfg.Check(); err != nil {
		return fmt.Errorf("vastauth: %w", err)
	}
	h.cfg = cfg
	h.challenge = `Basic realm="` + cfg.Realm + `", charset="UTF-8"`

	resolve, loadStore := cfg.ResolveSecrets, vastauth.LoadSessionStore
	if onlyValidating() {
		resolve, loadStore = cfg.CheckSecrets, vastauth.CheckSessionStore
	}
	secrets, err := resolve(expand)
	if err != nil {
		return fmt.Errorf("vastauth: %w", err)
	}
	h.secrets = vastauth.NewSecretSet(secrets.Values)
	h.login = describeLogin(cfg, secrets)
	if cfg.StripOnly {
		return nil
	}

	h.state, err = vastauthStates.hold(filepath.Clean(cfg.StateDir), h, h.logger, func(*zap.Logger) (*authState, error) {
		store, err := loadStore(cfg.StateDir)
		if err != nil {
			return nil, err
		}
		ledger, err := vastauth.NewHandoffLedger()
		if err != nil {
			return nil, err
		}
		if store.SaltReplaced != nil {
			h.logger.Warn("session state", zap.Error(store.SaltReplaced))
		}
		return &authState{store: store, handoffs: ledger}, nil
	})
	if err != nil {
		return fmt.Errorf("vastauth: %w", err)
	}

	h.auth, err = vastauth.New(vastauth.Params{
		Username:    cfg.Username,
		Secrets:     secrets.Values,
		Salt:        h.state.Value.store.Salt,
		SessionTTL:  cfg.SessionTTL.Std(),
		Revocations: h.state.Value.store.Revocations,
		Handoffs:    h.state.Value.handoffs,
		Unguessable: secrets.Unguessable,
	})
	if err != nil {
		return fmt.Errorf("vastauth: %w", err)
	}

	limiterKey := fmt.Sprintf("%d/%d/%d", cfg.FailureLimit, cfg.FailureWindow, cfg.MaxTrackedClients)
	h.limiter, err = vastauthLimiters.hold(limiterKey, h, h.logger, func(*zap.Logger) (*vastauth.Limiter, error) {
		return vastauth.NewLimiter(cfg)
	})
	if err != nil {
		return fmt.Errorf("vastauth: %w", err)
	}
	h.announce()
	return nil
}

// onlyValidating reports whether this process only validates a config
// (`caddy validate`, `caddy adapt --validate`): Caddy then provisions the
// modules and stops, without starting any app, and gives modules no way to
// tell. Validating must leave nothing behind, so Provision then reads the
// state directory without creating the token or the salt.
func onlyValidating() bool { return validatingArgs(os.Args) }

// validatingArgs is onlyValidating on a command line: the subcommand is the
// first argument.
func validatingArgs(args []string) bool {
	if len(args) < 2 {
		return false
	}
	switch args[1] {
	case "validate":
		return true
	case "adapt":
		for _, a := range args[2:] {
			if a == "--validate" || a == "-validate" || a == "--validate=true" {
				return true
			}
		}
	}
	return false
}

// loginInfo is what the start-up line says about logging in: where the
// secrets come from (placeholder names, the token file), never any part of
// a secret, plus a digest that tells one login from another.
type loginInfo struct {
	fingerprint [sha256.Size]byte
	user        string
	from        []string
	cookie      string
	stripOnly   bool
}

func describeLogin(cfg vastauth.Config, s vastauth.ResolvedSecrets) loginInfo {
	li := loginInfo{user: cfg.Username, from: s.From, cookie: cfg.CookieName, stripOnly: cfg.StripOnly}
	fp := sha256.New()
	fmt.Fprintf(fp, "%q %q %q %v", li.user, li.cookie, li.from, li.stripOnly)
	for _, v := range s.Values {
		fp.Write([]byte{0})
		fp.Write([]byte(v))
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

// announce logs, once per distinct login, how to log in. It names where the
// secrets come from and never shows any part of one: a password a person
// chose is often reused elsewhere, and even its first characters help a
// guesser.
func (h *VastAuth) announce() {
	if h.login.stripOnly {
		return
	}
	announced.Lock()
	defer announced.Unlock()
	if announced.fingerprint == h.login.fingerprint {
		return
	}
	announced.fingerprint = h.login.fingerprint
	h.logger.Info("authentication on: open an app with ?token=<secret>, or log in as the user with a secret as password; `caddy portal token` prints the token",
		zap.String("user", h.login.user),
		zap.Strings("secrets_from", h.login.from),
		zap.String("cookie", h.login.cookie))
}

// Cleanup releases this config's hold on the pooled state. It tolerates a
// Provision that failed halfway, and being called twice.
func (h *VastAuth) Cleanup() error {
	err := errors.Join(h.state.release(), h.limiter.release())
	h.state, h.limiter = nil, nil
	return err
}

var (
	errNoCredentials    = errors.New("vastauth: no credentials")
	errWrongCredentials = errors.New("vastauth: wrong credentials")
	errTooManyFailures  = errors.New("vastauth: too many wrong credentials from this client")
)

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *VastAuth) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h.cfg.StripOnly {
		h.strip(r, vastauth.Extract(r, h.cfg.CookieName), 0)
		return next.ServeHTTP(w, r)
	}
	if r.URL.Path == vastauth.LogoutPath {
		return h.logout(w, r)
	}
	now := h.now()
	creds := vastauth.Extract(r, h.cfg.CookieName)
	if vastauth.IsPublicPath(r.URL.Path, r.URL.EscapedPath()) {
		h.strip(r, creds, 0)
		return next.ServeHTTP(w, r)
	}

	client := vastauth.ClientAddr(r)
	var res vastauth.Result
	if blocked, _ := h.limiter.Value.Blocked(client, now); blocked {
		// Over the limit: a right guess must be worth nothing, so guessable
		// credentials are not even checked. A signed session or handoff
		// token cannot be guessed and still works.
		res = h.auth.CheckSigned(creds, now)
		if res.Verdict != vastauth.Accepted {
			if res.Verdict == vastauth.Rejected || creds.Guessable(h.auth, now) {
				_, wait := h.fail(client, now)
				return h.tooMany(w, r, wait)
			}
			return h.deny(w, r, creds, errNoCredentials)
		}
	} else {
		res = h.auth.Check(creds, now)
		switch res.Verdict {
		case vastauth.NoCredentials:
			return h.deny(w, r, creds, errNoCredentials)
		case vastauth.Rejected:
			if res.HandoffErr != nil {
				h.logger.Debug("handoff token refused", zap.Error(res.HandoffErr))
			}
			if ok, wait := h.fail(client, now); !ok {
				return h.tooMany(w, r, wait)
			}
			return h.deny(w, r, creds, errWrongCredentials)
		}
	}

	// This connection has logged in: the connection caps never close it
	// to make room (portal_connlimit).
	sharedConnLimiter.Authenticated(r)
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set("http.auth.user.id", h.cfg.Username)
	}
	if res.IssueSession() {
		http.SetCookie(w, h.sessionCookie(r, h.auth.IssueSession(now), int(h.auth.TTL()/time.Second)))
	}
	if (creds.HasToken || creds.HasHandoff) && isNavigation(r) {
		if loc, ok := locationWithoutCredentials(r); ok {
			w.Header().Set("Location", loc)
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusFound)
			return nil
		}
	}
	if r.URL.Path == vastauth.HandoffPath {
		return h.handoff(w, r, creds, now)
	}
	h.strip(r, creds, res.Accepted)
	return next.ServeHTTP(w, r)
}

// isBrowser: the client takes HTML, so an error page helps it.
func isBrowser(r *http.Request) bool {
	return r.Header.Get("Sec-Fetch-Dest") == "document" || strings.Contains(r.Header.Get("Accept"), "text/html")
}

// deny answers 401 with a Basic challenge, so a browser shows its login
// prompt; a browser also gets a page saying how to log in, for when the
// prompt is cancelled. A cookie that did not authenticate is cleared, so
// the browser stops presenting it.
func (h *VastAuth) deny(w http.ResponseWriter, r *http.Request, creds vastauth.Credentials, err error) error {
	w.Header().Set("WWW-Authenticate", h.challenge)
	// A refused client does not keep its connection: idle keep-alive
	// connections that each got a 401 once filled the connection caps.
	w.Header().Set("Connection", "close")
	if creds.HasCookie {
		http.SetCookie(w, h.sessionCookie(r, "", -1))
	}
	if isBrowser(r) {
		return h.page(w, r, http.StatusUnauthorized, "login", authPageData{Title: "Log in"})
	}
	return caddyhttp.Error(http.StatusUnauthorized, err)
}

// tooMany answers 429 with the wait; a browser also gets a page.
func (h *VastAuth) tooMany(w http.ResponseWriter, r *http.Request, wait time.Duration) error {
	secs := int(wait / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	w.Header().Set("Connection", "close")
	if isBrowser(r) {
		return h.page(w, r, http.StatusTooManyRequests, "limited", authPageData{Title: "Too many wrong logins", RetryAfter: secs})
	}
	return caddyhttp.Error(http.StatusTooManyRequests, errTooManyFailures)
}

// sessionCookie is our cookie with value v; maxAge < 0 deletes it. It is
// Secure whenever the browser used https, also through a tunnel that
// speaks plain HTTP to us.
func (h *VastAuth) sessionCookie(r *http.Request, v string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     h.cfg.CookieName,
		Value:    v,
		Path:     "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
		Secure:   vastauth.BrowserUsedHTTPS(r),
	}
}

// logout: GET shows a page whose button POSTs here; POST (from that page,
// never cross-site) revokes the session in the cookie until its expiry and
// clears the cookie. A GET changes nothing, so no other page can log a user
// out by linking here.
func (h *VastAuth) logout(w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return h.page(w, r, http.StatusOK, "logout", authPageData{Title: "Log out", Action: vastauth.LogoutPath})
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		return caddyhttp.Error(http.StatusMethodNotAllowed, errors.New("vastauth: logout takes GET or POST"))
	}
	if refusal := vastauth.CrossSiteRefusal(r); refusal != "" {
		return caddyhttp.Error(http.StatusForbidden, errors.New("vastauth: logout: "+refusal))
	}
	if v, ok := vastauth.CookieValue(r.Header["Cookie"], h.cfg.CookieName); ok {
		revoked, floorRaised, err := h.auth.Revoke(v, h.now())
		logger := h.state.Log
		if err != nil {
			logger.Error("logout: the session is revoked until restart only", zap.Error(err))
		}
		if floorRaised {
			logger.Warn("logout: the revocation list is full; the sessions expiring first were logged out with it",
				zap.Int("max_revoked", vastauth.MaxRevoked))
		}
		if revoked {
			logger.Debug("session revoked")
		}
	}
	http.SetCookie(w, h.sessionCookie(r, "", -1))
	return h.page(w, r, http.StatusOK, "logged-out", authPageData{Title: "Logged out"})
}

// maxHandoffBody bounds the body of POST /api/handoff.
const maxHandoffBody = 4096

// handoff answers POST /api/handoff for an authenticated request: a
// handoff token for the origin in the body. See docs/vastauth.md.
func (h *VastAuth) handoff(w http.ResponseWriter, r *http.Request, creds vastauth.Credentials, now time.Time) error {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		return writeAuthJSONError(w, http.StatusMethodNotAllowed, "POST only")
	}
	if refusal := vastauth.CrossSiteRefusal(r); refusal != "" {
		return writeAuthJSONError(w, http.StatusForbidden, refusal)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return writeAuthJSONError(w, http.StatusUnsupportedMediaType, "want Content-Type: application/json")
	}
	var body struct {
		Origin *string `json:"origin"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxHandoffBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return writeAuthJSONError(w, http.StatusBadRequest, fmt.Sprintf("body: over %d bytes", maxHandoffBody))
		}
		return writeAuthJSONError(w, http.StatusBadRequest, `body: want {"origin": "https://…"}: `+clipText(err.Error(), 120))
	}
	if _, err := dec.Token(); err != io.EOF {
		return writeAuthJSONError(w, http.StatusBadRequest, "body: want one JSON object")
	}
	if body.Origin == nil {
		return writeAuthJSONError(w, http.StatusBadRequest, "origin: missing")
	}
	if err := vastauth.CheckHandoffOrigin(*body.Origin, r.Host, h.ownHosts()); err != nil {
		return writeAuthJSONError(w, http.StatusBadRequest, err.Error())
	}
	tok, err := h.auth.IssueHandoff(*body.Origin, creds.Cookie, now)
	if err != nil {
		return writeAuthJSONError(w, http.StatusBadRequest, err.Error())
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeAuthJSON(w, http.StatusOK, map[string]any{"token": tok, "expires_in": int(vastauth.HandoffTTL / time.Second)})
}

// ownHosts are the instance's addresses besides the request's host: the
// public address (PUBLIC_IPADDR, portalconfig.Settings.PublicIP) and the
// running tunnels' host names.
func (h *VastAuth) ownHosts() []string {
	own := []string{os.Getenv("PUBLIC_IPADDR")}
	if h.tunnelHosts != nil {
		own = append(own, h.tunnelHosts()...)
	}
	return own
}

func tunnelHosts(m *tunnels.Manager) []string {
	if m == nil {
		return nil
	}
	var hosts []string
	for _, st := range m.List() {
		if u, err := url.Parse(st.URL); err == nil && u.Host != "" {
			hosts = append(hosts, u.Host)
		}
	}
	return hosts
}

func writeAuthJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n')) // a client that left is not our error
	return nil
}

func writeAuthJSONError(w http.ResponseWriter, status int, msg string) error {
	return writeAuthJSON(w, status, map[string]string{"error": msg})
}

// authPageData fills the auth pages (web.AuthPages).
type authPageData struct {
	Title, Realm, Username, Action string
	RetryAfter                     int
}

// authPages are parsed once; their style is inline, allowed by its hash in
// the pages' Content-Security-Policy, which allows nothing else but a form
// posting back here.
var authPages = template.Must(template.New("auth").Parse(web.AuthPages))

var authPageCSP = func() string {
	var b bytes.Buffer
	if err := authPages.ExecuteTemplate(&b, "style", nil); err != nil {
		panic(err)
	}
	css := strings.TrimSuffix(strings.TrimPrefix(b.String(), "<style>"), "</style>")
	sum := sha256.Sum256([]byte(css))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
}()

// page answers with one of the auth pages.
func (h *VastAuth) page(w http.ResponseWriter, r *http.Request, status int, name string, d authPageData) error {
	d.Realm, d.Username = h.cfg.Realm, h.cfg.Username
	var b bytes.Buffer
	if err := authPages.ExecuteTemplate(&b, name, d); err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Content-Security-Policy", authPageCSP)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return nil
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		// The client went away; nothing is wrong with the server.
		h.logger.Debug("writing auth page", zap.Error(err))
	}
	return nil
}

// isNavigation: a browser loading a page, which we may redirect.
func isNavigation(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	return isBrowser(r)
}

// locationWithoutCredentials is the request's own URL without the token
// and portal_handoff parameters, as a relative reference. A path that a
// browser would read as another host ("//evil.example/") is not redirected
// at all.
func locationWithoutCredentials(r *http.Request) (string, bool) {
	p := r.URL.EscapedPath()
	if p == "" {
		p = "/"
	}
	if p[0] != '/' || strings.HasPrefix(p, "//") || strings.HasPrefix(p, `/\`) {
		return "", false
	}
	if q := stripCredentialParams(r.URL.RawQuery); q != "" {
		p += "?" + q
	}
	return p, true
}

func stripCredentialParams(q string) string {
	q, _ = vastauth.StripQueryParam(q, vastauth.TokenParam)
	q, _ = vastauth.StripQueryParam(q, vastauth.HandoffParam)
	return q
}

// strip removes what is ours before the app sees the request: the token
// and portal_handoff parameters, our cookie, and every Authorization
// header that carries a secret in any form (vastauth.SecretSet.Carries) or
// that authenticated the request. An app's own cookies, parameters and
// Authorization pass untouched.
func (h *VastAuth) strip(r *http.Request, creds vastauth.Credentials, accepted vastauth.Methods) {
	if creds.HasToken || creds.HasHandoff {
		setQuery(r, stripCredentialParams(r.URL.RawQuery))
	}
	// Our secret under a name we do not know (?Token=, token[]=, ;token=):
	// the parameter goes too (issue 20).
	if r.URL.RawQuery != "" {
		if q, changed := h.secrets.StripQuery(r.URL.RawQuery); changed {
			setQuery(r, q)
		}
	}
	if creds.HasCookie {
		if rest, _ := vastauth.StripCookie(r.Header["Cookie"], h.cfg.CookieName); len(rest) > 0 {
			r.Header["Cookie"] = rest
		} else {
			delete(r.Header, "Cookie")
		}
	}
	// X-Api-Key is left to the app even when it holds our token: on the
	// reference's image the instance token is Syncthing's API key, and
	// templates call `curl -H "X-API-Key: $OPEN_BUTTON_TOKEN"` through the
	// portal (issue 17 #8, TestImageBoot).
	authz := r.Header["Authorization"]
	if len(authz) == 0 {
		return
	}
	if accepted.Has(vastauth.MethodBearer) || accepted.Has(vastauth.MethodBasic) {
		delete(r.Header, "Authorization")
		return
	}
	var kept []string
	for _, v := range authz {
		if !h.secrets.Carries(v) {
			kept = append(kept, v)
		}
	}
	if len(kept) == len(authz) {
		return
	}
	if len(kept) == 0 {
		delete(r.Header, "Authorization")
	} else {
		r.Header["Authorization"] = kept
	}
}

// portalSecretSource is where the portal's secrets come from.
func portalSecretSource(s *portalconfig.Settings) vastauth.SecretSource {
	return vastauth.PortalSecretSource(s.StateDir)
}

// vastauthHandler is the portal's vastauth config for an app port: every
// setting written explicitly, and the secrets as placeholders only.
// stripOnly is for a port in AUTH_EXCLUDE.
func vastauthHandler(s *portalconfig.Settings, stripOnly bool, warns *[]caddyconfig.Warning) json.RawMessage {
	return caddyconfig.JSONModuleObject(VastAuth{Config: vastauth.Config{
		SecretSource: portalSecretSource(s),
		Username:     s.WebUsername,
		CookieName:   s.CookieName(),
		Realm:        portalconfig.PortalAppName,
		StripOnly:    stripOnly,
	}}, "handler", "vastauth", warns)
}

// handoffElsewhereHandler is for the portal's internal server, which no
// vastauth guards (it is reached through the external port, where vastauth
// answers /api/handoff itself, or through an SSH forward, or with
// ENABLE_AUTH=false): a clear JSON 404 there, so that the dashboard knows
// to open the plain link, rather than the file server's bare 404.
func handoffElsewhereHandler(warns *[]caddyconfig.Warning) json.RawMessage {
	return caddyconfig.JSONModuleObject(caddyhttp.StaticResponse{
		StatusCode: caddyhttp.WeakString("404"),
		Headers:    http.Header{"Content-Type": {"application/json"}, "Cache-Control": {"no-store"}},
		Body:       `{"error":"no handoff tokens here: vastauth issues them on a port it guards"}` + "\n",
	}, "handler", "static_response", warns)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*VastAuth)(nil)
	_ caddy.CleanerUpper          = (*VastAuth)(nil)
	_ caddyhttp.MiddlewareHandler = (*VastAuth)(nil)
)

// setQuery replaces the request's query string, in its URL and in the
// RequestURI the proxy forwards.
func setQuery(r *http.Request, q string) {
	r.URL.RawQuery = q
	r.URL.ForceQuery = false
	if i := strings.IndexByte(r.RequestURI, '?'); i >= 0 {
		r.RequestURI = r.RequestURI[:i]
		if q != "" {
			r.RequestURI += "?" + q
		}
	}
}
