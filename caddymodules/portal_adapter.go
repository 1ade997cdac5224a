package caddymodules

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/encode"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/headers"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/caddyserver/caddy/v2/modules/caddytls"

	"go.uber.org/zap"

	"github.com/instanceportal/portal/hostguard"
	"github.com/instanceportal/portal/portalconfig"
)

func init() {
	caddyconfig.RegisterAdapter("portal_yaml", PortalAdapter{fallback: newLastGoodFallback()})
}

// PortalAdapter turns portal.yaml (or PORTAL_CONFIG) plus the environment
// into Caddy JSON: one server per exposed external port, guarded by vastauth
// and proxying to the app, and an internal server on 127.0.0.1 that our own
// handlers serve for the Instance Portal entry.
//
// Secrets never enter the output: vastauth receives {env.…} placeholders and
// resolves them at Provision, because the admin API hands the running config
// to any local process.
//
// The adaptation itself is adaptPortal, a pure function of the input, an
// environment snapshot and the clock. Adapt adds only the snapshot, the
// clock and, for config files, the lastGoodFallback.
type PortalAdapter struct {
	// fallback re-serves the last good output of a config file when an edit
	// breaks it (see lastGoodFallback); nil turns that off.
	fallback *lastGoodFallback
}

// certTag selects the instance certificate in TLS connection policies.
const certTag = "portal_instance"

// Adapt implements caddyconfig.Adapter. options may be nil; "filename" names
// the input in messages.
func (a PortalAdapter) Adapt(body []byte, options map[string]any) ([]byte, []caddyconfig.Warning, error) {
	filename, _ := options["filename"].(string)
	if filename == "" {
		// A body POSTed to the admin API's /load: no file, so no last good
		// config either; the caller gets the error straight back.
		out, warns, err := adaptPortal(body, "portal.yaml", portalconfig.OSEnviron(), time.Now())
		return out, warns, err
	}
	out, warns, err := adaptPortal(body, filename, portalconfig.OSEnviron(), time.Now())
	if a.fallback != nil {
		return a.fallback.apply(filename, out, warns, err)
	}
	return out, warns, err
}

// adaptPortal is the adapter proper: the Caddy JSON for body (named
// filename in messages), the environment env and the time now (which
// judges the certificate's validity). It reads nothing else.
func adaptPortal(body []byte, filename string, env portalconfig.Environ, now time.Time) ([]byte, []caddyconfig.Warning, error) {
	plan, warns, err := loadPlan(body, filename, env, now)
	if err != nil {
		return nil, warns, err
	}
	cfg := buildConfig(plan, &warns)
	if err := withIdle(cfg, plan, env, &warns); err != nil {
		return nil, warns, err
	}
	out, err := json.Marshal(cfg)
	return out, warns, err
}

// lastGoodFallback lets a watched config file survive a broken edit.
// Caddy's `run --watch` poller re-adapts the file every second and stops
// watching for good at the first adapter error (cmd/main.go
// watchConfigFile returns; it has no hook to change that), so one broken
// edit would silently end all later reloads. With this, a broken edit
// re-serves the output of the last good adaptation of that file in this
// process (the watcher sees no change and keeps polling), the error is
// logged once, and the next good edit applies. A fresh process — `caddy
// run`'s first load, `caddy reload`, `caddy adapt` — has no earlier output
// and gets the error itself.
type lastGoodFallback struct {
	mu     sync.Mutex
	byFile map[string]*lastGoodEntry
	// logError reports a broken edit that is not applied; the watcher
	// adapts with a no-op logger, so the fallback says it itself.
	logError func(file string, err error)
}

type lastGoodEntry struct {
	out      []byte
	reported string // the error already reported for this file
}

func newLastGoodFallback() *lastGoodFallback {
	return &lastGoodFallback{
		byFile: map[string]*lastGoodEntry{},
		logError: func(file string, err error) {
			caddy.Log().Named("portal_yaml").Error(editNotApplied, zap.String("file", file), zap.Error(err))
		},
	}
}

const editNotApplied = "edit not applied, the running config stays in effect"

// apply remembers a good adaptation of filename, or turns a failed one
// into the last good output plus a warning.
func (f *lastGoodFallback) apply(filename string, out []byte, warns []caddyconfig.Warning, err error) ([]byte, []caddyconfig.Warning, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		f.byFile[filename] = &lastGoodEntry{out: out}
		return out, warns, nil
	}
	e, ok := f.byFile[filename]
	if !ok {
		return nil, warns, err
	}
	if msg := err.Error(); msg != e.reported {
		e.reported = msg
		warns = append(warns, caddyconfig.Warning{File: filename, Message: editNotApplied + ": " + msg})
		f.logError(filename, err)
	}
	return e.out, warns, nil
}

// loadPlan is portalconfig.LoadPlan with Caddy's warnings.
func loadPlan(body []byte, filename string, env portalconfig.Environ, now time.Time) (*portalconfig.Plan, []caddyconfig.Warning, error) {
	plan, pwarns, err := portalconfig.LoadPlan(body, filename, env, now)
	warns := make([]caddyconfig.Warning, 0, len(pwarns))
	for _, w := range pwarns {
		warns = append(warns, caddyconfig.Warning{File: w.Source, Line: w.Line, Directive: w.App, Message: w.Msg})
	}
	return plan, warns, err
}

// buildConfig renders the plan as a Caddy config: the http app with one
// server per exposed port plus the portal's own, the instance certificate
// when TLS is on, and the apps the portal's routes rely on.
func buildConfig(plan *portalconfig.Plan, warns *[]caddyconfig.Warning) *caddy.Config {
	s := plan.Settings
	httpApp := caddyhttp.App{
		Servers: map[string]*caddyhttp.Server{},
		// A stop waits this long for requests in flight, then the process
		// exits anyway. Caddy's default waits forever, so one stuck
		// stream kept SIGTERM from ending the process (issue 14). A
		// reload is not cut short by it: Caddy leaves the old config's
		// requests running once the period ends.
		GracePeriod: caddy.Duration(shutdownGrace),
	}
	for _, sp := range plan.Servers {
		httpApp.Servers[sp.ServerName()] = appServer(plan, sp, warns)
	}
	if plan.Portal != nil {
		httpApp.Servers["portal"] = portalServer(plan, warns)
	}
	apps := caddy.ModuleMap{
		"http": caddyconfig.JSON(httpApp, warns),
		// Always present, so that the tunnels API can create tunnels even
		// when the config starts none.
		"tunnels": caddyconfig.JSON(tunnelsAppFor(plan), warns),
		// Where file_server finds the embedded dashboard by name.
		"caddy.filesystems": dashboardFilesystems(warns),
	}
	if plan.TLS {
		apps["tls"] = caddyconfig.JSON(caddytls.TLS{
			CertificatesRaw: caddy.ModuleMap{"load_files": caddyconfig.JSON([]caddytls.CertKeyFilePair{{
				Certificate: s.CertFile, Key: s.KeyFile, Tags: []string{certTag},
			}}, warns)},
		}, warns)
	}
	admin := &caddy.AdminConfig{Listen: s.AdminListen}
	if s.AdminListen == "off" {
		admin = &caddy.AdminConfig{Disabled: true}
	}
	cfg := &caddy.Config{Admin: admin, AppsRaw: apps}
	if s.AccessLog {
		cfg.Logging = accessLogging(s, warns)
	}
	return cfg
}

// accessLogName is the logger our app servers write access logs to.
const accessLogName = "access"

// accessLogging (PORTAL_ACCESS_LOG=true) sends access logs to stderr through
// the vastauth_redact filter on the request URI and headers: our
// credentials are redacted by name (token, portal_handoff, however
// spelled: ?Token=, ?token[]=, ;token=, %23token=) and by value (any part
// that carries one of the secrets, whatever it is called). vastauth strips
// them before the upstream, but the log records the request as received.
// Caddy itself already redacts Cookie and Authorization.
func accessLogging(s *portalconfig.Settings, warns *[]caddyconfig.Warning) *caddy.Logging {
	redact := caddyconfig.JSONModuleObject(VastAuthRedact{SecretSource: portalSecretSource(s)}, "filter", "vastauth_redact", warns)
	encoder := map[string]any{
		"format": "filter",
		"wrap":   map[string]any{"format": "json"},
		"fields": map[string]json.RawMessage{
			"request>uri":     redact,
			"request>headers": redact,
		},
	}
	return &caddy.Logging{Logs: map[string]*caddy.CustomLog{
		"default": {Exclude: []string{"http.log.access." + accessLogName}},
		accessLogName: {
			BaseLog: caddy.BaseLog{EncoderRaw: caddyconfig.JSON(encoder, warns)},
			Include: []string{"http.log.access." + accessLogName},
		},
	}}
}

// Timeouts and limits of the servers (issue 14: a flood of idle
// connections exhausted the descriptors; SIGTERM could hang).
const (
	// readHeaderTimeout: a request's headers must arrive within it, and a
	// connection that sends nothing is closed then (Caddy's default is a
	// minute). Headers are a few KB: 10 s is ample even on a poor link.
	readHeaderTimeout = 10 * time.Second
	// idleTimeout closes a keep-alive connection with no request in
	// flight. It is longer than cloudflared's 90 s keep-alive towards its
	// origin, so that cloudflared never reuses a connection we are
	// closing. Streams (WebSockets, SSE) are not idle and are not cut.
	idleTimeout = 2 * time.Minute
	// shutdownGrace is how long a stop waits for requests in flight.
	shutdownGrace = 10 * time.Second
)

// appServer is the external listener of one app.
func appServer(plan *portalconfig.Plan, sp portalconfig.ServerPlan, warns *[]caddyconfig.Warning) *caddyhttp.Server {
	s := plan.Settings
	srv := &caddyhttp.Server{
		Listen:    []string{":" + strconv.Itoa(sp.Port)},
		AutoHTTPS: &caddyhttp.AutoHTTPSConfig{Disabled: true}, // never ACME, never port 80
		Errors:    &caddyhttp.HTTPErrorConfig{Routes: startingUpRoutes(plan, sp, warns)},
		// No HTTP/3: cloud port mappings forward TCP only, so an Alt-Svc
		// pointing at UDP would only send browsers on a detour.
		Protocols:         []string{"h1"},
		ReadHeaderTimeout: caddy.Duration(readHeaderTimeout),
		IdleTimeout:       caddy.Duration(idleTimeout),
		// The connection caps come first, before TLS: a refused
		// connection costs no handshake. The internal server has none:
		// the caps keep descriptors free for it.
		ListenerWrappersRaw: []json.RawMessage{connLimitWrapper(warns)},
	}
	if s.AccessLog {
		srv.Logs = &caddyhttp.ServerLogConfig{DefaultLoggerName: accessLogName}
	}
	if plan.TLS {
		srv.Protocols = []string{"h1", "h2"}
		srv.ListenerWrappersRaw = append(srv.ListenerWrappersRaw,
			caddyconfig.JSONModuleObject(struct{}{}, "wrapper", "http_redirect", warns),
			caddyconfig.JSONModuleObject(struct{}{}, "wrapper", "tls", warns),
		)
		srv.TLSConnPolicies = caddytls.ConnectionPolicies{{
			CertSelection: &caddytls.CustomCertSelectionPolicy{AnyTag: []string{certTag}},
		}}
	}
	var routes caddyhttp.RouteList
	var cors *corsRules
	if !sp.App.IsPortal() {
		// CADDY_CORS_ALLOWED_ORIGINS is for the apps. The portal's own
		// APIs change state and serve logs: never readable cross-site.
		cors = corsPolicy(s.CORSOrigins)
	}
	if sp.Auth {
		if cors != nil {
			// Browsers send CORS preflights without credentials, so an
			// authenticated port must answer them itself.
			routes = append(routes, cors.preflightRoute(warns))
		}
		routes = append(routes, caddyhttp.Route{HandlersRaw: []json.RawMessage{vastauthHandler(s, false, warns)}})
	} else if s.EnableAuth {
		// An AUTH_EXCLUDE port: browsers send our cookie to every port of
		// the host, so the app here would collect a login that opens all the
		// others. Remove our credentials, check nothing.
		routes = append(routes, caddyhttp.Route{HandlersRaw: []json.RawMessage{vastauthHandler(s, true, warns)}})
	}
	routes = append(routes, caddyhttp.Route{
		MatcherSetsRaw: caddyhttp.RawMatcherSets{{"path": caddyconfig.JSON([]string{"/portal-resolver"}, warns)}},
		HandlersRaw: []json.RawMessage{caddyconfig.JSONModuleObject(caddyhttp.StaticResponse{
			StatusCode: caddyhttp.WeakString("200"),
			Headers: http.Header{
				"Access-Control-Allow-Origin":  {"*"},
				"Access-Control-Allow-Methods": {"GET, HEAD, OPTIONS"},
				"Access-Control-Allow-Headers": {"*"},
				"Cache-Control":                {"no-store"},
				"Content-Type":                 {"text/plain; charset=utf-8"},
			},
			Body: "ok\n",
		}, "handler", "static_response", warns)},
		Terminal: true,
	})
	if cors != nil {
		routes = append(routes, cors.responseRoute(warns))
	}
	if sp.App.IsPortal() {
		// The log API is served here, in process, rather than through the
		// proxy: a browser closing a live stream is then a client leaving
		// (logged at debug), not a proxied response cut short (which
		// reverse_proxy logs as a warning), and each line saves a hop. Both
		// servers' routes share the one pooled log service.
		routes = append(routes, terminal(logstreamRoute(plan, warns)))
	}
	// Requests that came through our Cloudflare tunnel carry Cf-Visitor
	// from a loopback peer (cloudflared): the visitor used https whatever
	// our own scheme. From any other peer the header is a forgery, which
	// the front handler removes. Two proxy routes rather
	// than a computed header keep the common path free of per-request
	// placeholder work, and each route carries its own encode rather than
	// one more route in front (every route is a layer each request crosses;
	// bench/proxy.sh). Caddy sets X-Forwarded-Proto to our own scheme itself.
	proxyRoute := func(viaTunnel bool) caddyhttp.Route {
		handlers := []json.RawMessage{portalFrontHandler(hostguard.FrontConfig{
			MarkInternal: sp.App.IsPortal(),
			// encode already holds the headers back until the body.
			HoldHeaderFlush: !s.Compression && s.FlushInterval < 0,
		}, warns)}
		if s.Compression {
			handlers = append(handlers, caddyconfig.JSONModuleObject(encode.Encode{
				EncodingsRaw: caddy.ModuleMap{"zstd": json.RawMessage("{}"), "gzip": json.RawMessage("{}")},
				Prefer:       []string{"zstd", "gzip"},
			}, "handler", "encode", warns))
		}
		handlers = append(handlers, caddyconfig.JSONModuleObject(proxyHandler(sp, s, viaTunnel), "handler", "reverse_proxy", warns))
		return caddyhttp.Route{HandlersRaw: handlers, Terminal: true}
	}
	viaTunnel := proxyRoute(true)
	viaTunnel.MatcherSetsRaw = caddyhttp.RawMatcherSets{fromCloudflared(caddyhttp.MatchHeader{"Cf-Visitor": {}}, warns)}
	routes = append(routes, viaTunnel, proxyRoute(false))
	srv.Routes = routes
	return srv
}

// fromCloudflared matches requests that carry the given Cloudflare header
// and come from a loopback peer: our own cloudflared. Anyone else can send
// the header.
func fromCloudflared(header caddyhttp.MatchHeader, warns *[]caddyconfig.Warning) caddy.ModuleMap {
	return caddy.ModuleMap{
		"header":    caddyconfig.JSON(header, warns),
		"remote_ip": caddyconfig.JSON(caddyhttp.MatchRemoteIP{Ranges: []string{"127.0.0.0/8", "::1"}}, warns),
	}
}

// proxyHandler proxies to the app, with the forwarded headers of the
// contract. viaTunnel: the request came through a Cloudflare tunnel.
func proxyHandler(sp portalconfig.ServerPlan, s *portalconfig.Settings, viaTunnel bool) reverseproxy.Handler {
	// X-Real-Ip is set by the front handler before this (hostguard.PrepareFront).
	set := http.Header{
		"Host": {sp.App.Upstream()}, // the one upstream's host:port, as the app expects
	}
	if viaTunnel {
		set["X-Forwarded-Proto"] = []string{"https"}
	}
	if sp.App.IsPortal() {
		// Our own handlers serve this upstream. They judge WebSocket
		// handshakes by comparing Origin with Host, so they must see the
		// Host the browser used (the external port, or a tunnel's name);
		// the internal server admits that Host because the front handler
		// marked the request (hostguard).
		delete(set, "Host")
	} else if sp.HostLocalhost {
		// Apps such as Syncthing refuse a foreign Host (403 "Host check
		// error") and compare Origin with it.
		local := "localhost:" + strconv.Itoa(sp.App.InternalPort)
		set["Host"] = []string{local}
		set["Origin"] = []string{"http://" + local}
	}
	var request *headers.HeaderOps // none at all is cheaper than an empty one
	if len(set) > 0 {
		request = &headers.HeaderOps{Set: set}
	}
	return reverseproxy.Handler{
		Upstreams:     reverseproxy.UpstreamPool{{Dial: sp.App.Upstream()}},
		FlushInterval: caddy.Duration(s.FlushInterval),
		Headers: &headers.Handler{
			Request: request,
			Response: &headers.RespHeaderOps{
				// Only our own placeholder page may carry this marker.
				HeaderOps: &headers.HeaderOps{Delete: []string{"X-Portal-Placeholder"}},
			},
		},
	}
}

// startingUpRoutes answer the 502/503/504 that Caddy raises when the app is
// not listening (yet) with a page that names the app, polls and reloads,
// always as 502 (the app's gateway is what failed). An app's own 5xx
// responses are not errors in Caddy's sense and pass through untouched.
// Cloudflare replaces 5xx bodies with its own page, so requests that came
// through our tunnel (Cf-Ray from cloudflared, a loopback peer) get the
// page with 200.
func startingUpRoutes(plan *portalconfig.Plan, sp portalconfig.ServerPlan, warns *[]caddyconfig.Warning) caddyhttp.RouteList {
	upstreamDown := caddyconfig.JSON(caddyhttp.VarsMatcher{"{http.error.status_code}": {"502", "503", "504"}}, warns)
	body, err := startingPage(plan, sp)
	if err != nil {
		*warns = append(*warns, caddyconfig.Warning{Message: fmt.Sprintf("starting-up page for port %d: %v", sp.Port, err)})
	}
	page := func(status string) json.RawMessage {
		return caddyconfig.JSONModuleObject(caddyhttp.StaticResponse{
			StatusCode: caddyhttp.WeakString(status),
			Headers: http.Header{
				"Content-Type":           {"text/html; charset=utf-8"},
				"Cache-Control":          {"no-store"},
				"X-Portal-Placeholder":   {"true"},
				"Retry-After":            {"2"},
				"X-Content-Type-Options": {"nosniff"},
				"Referrer-Policy":        {"no-referrer"},
			},
			Body: body,
		}, "handler", "static_response", warns)
	}
	// An API client (Accept: application/json) gets the same news as JSON,
	// with the same status as the page would have.
	jsonPage := func(status string) json.RawMessage {
		doc, _ := json.Marshal(startingJSON{Status: "starting", App: sp.App.Name,
			Message: sp.App.Name + " is not answering yet; retry in a few seconds."})
		return caddyconfig.JSONModuleObject(caddyhttp.StaticResponse{
			StatusCode: caddyhttp.WeakString(status),
			Headers: http.Header{
				"Content-Type":         {"application/json"},
				"Cache-Control":        {"no-store"},
				"X-Portal-Placeholder": {"true"},
				"Retry-After":          {"2"},
			},
			Body: literalText(string(doc) + "\n"),
		}, "handler", "static_response", warns)
	}
	const acceptJSON = "*application/json*"
	viaTunnel := func(header caddyhttp.MatchHeader) caddy.ModuleMap {
		header["Cf-Ray"] = []string{}
		m := fromCloudflared(header, warns)
		m["vars"] = upstreamDown
		return m
	}
	direct := func(header caddyhttp.MatchHeader) caddy.ModuleMap {
		m := caddy.ModuleMap{"vars": upstreamDown}
		if header != nil {
			m["header"] = caddyconfig.JSON(header, warns)
		}
		return m
	}
	route := func(m caddy.ModuleMap, h json.RawMessage) caddyhttp.Route {
		return caddyhttp.Route{MatcherSetsRaw: caddyhttp.RawMatcherSets{m}, HandlersRaw: []json.RawMessage{h}, Terminal: true}
	}
	return caddyhttp.RouteList{
		route(viaTunnel(caddyhttp.MatchHeader{"Accept": {acceptJSON}}), jsonPage("200")),
		route(viaTunnel(caddyhttp.MatchHeader{}), page("200")),
		route(direct(caddyhttp.MatchHeader{"Accept": {acceptJSON}}), jsonPage("502")),
		route(direct(nil), page("502")),
	}
}

// startingJSON is the starting-up answer for API clients.
type startingJSON struct {
	Status  string `json:"status"`
	App     string `json:"app"`
	Message string `json:"message"`
}

// portalServer is the internal listener of the Instance Portal entry: our
// own handlers on 127.0.0.1, reached through the entry's external port
// (behind vastauth) or an SSH forward.
func portalServer(plan *portalconfig.Plan, warns *[]caddyconfig.Warning) *caddyhttp.Server {
	return &caddyhttp.Server{
		Listen:    []string{"127.0.0.1:" + strconv.Itoa(plan.Portal.InternalPort)},
		AutoHTTPS: &caddyhttp.AutoHTTPSConfig{Disabled: true},
		Protocols: []string{"h1"},
		// Idle connections keep Caddy's default (5 min): the entry's
		// proxy keeps its own idle connections here for 2 min, and the
		// server must not close one the proxy is about to reuse.
		ReadHeaderTimeout: caddy.Duration(readHeaderTimeout),
		Routes:            portalServerRoutes(plan, warns),
	}
}

// portalServerRoutes lists every route of the portal's own server, in the
// order requests meet them: the guard, the route table's APIs
// (portalRoutes), the dashboard's files last, so that the file server only
// answers what no API claimed.
func portalServerRoutes(plan *portalconfig.Plan, warns *[]caddyconfig.Warning) caddyhttp.RouteList {
	// First: no other route may answer a request it refuses.
	routes := caddyhttp.RouteList{internalGuardRoute(warns)}
	for _, r := range portalRoutes() {
		routes = append(routes, r.caddyRoute(plan, warns))
	}
	return append(routes, dashboardFilesRoute(warns))
}

// staticJSON answers 200 with body, a JSON document, never cached. The
// body is served literally (see literalText): it may hold user text.
func staticJSON(body string, warns *[]caddyconfig.Warning) json.RawMessage {
	return caddyconfig.JSONModuleObject(caddyhttp.StaticResponse{
		StatusCode: caddyhttp.WeakString("200"),
		Headers:    http.Header{"Content-Type": {"application/json"}, "Cache-Control": {"no-store"}},
		Body:       literalText(body + "\n"),
	}, "handler", "static_response", warns)
}

// placeholderEscaper puts a backslash before every brace.
var placeholderEscaper = strings.NewReplacer("{", `\{`, "}", `\}`)

// literalText escapes s for a config field whose value Caddy expands
// (a static_response body, a header value, …), so that it is served
// exactly as written. Caddy's replacer reads `\{` and `\}` as literal
// braces and drops the one backslash before each, whatever precedes it, so
// the escaping is exact for every s (FuzzLiteralText). Without it, a
// portal.yaml app named "leak={env.WEB_PASSWORD}" was served with the
// password filled in, and {http.request.header.Cookie} with the visitor's
// cookie (issue 14).
func literalText(s string) string {
	return placeholderEscaper.Replace(s)
}

// pathRoute is a route matching the given path patterns (Caddy path matcher
// syntax: "/api/logs/*") and running the handlers, in order.
func pathRoute(warns *[]caddyconfig.Warning, paths []string, handlers ...json.RawMessage) caddyhttp.Route {
	return caddyhttp.Route{
		MatcherSetsRaw: caddyhttp.RawMatcherSets{{"path": caddyconfig.JSON(paths, warns)}},
		HandlersRaw:    handlers,
	}
}

func terminal(r caddyhttp.Route) caddyhttp.Route {
	r.Terminal = true
	return r
}
