package caddymodules

import (
	"encoding/json"
	"io"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/instanceportal/portal/confdecl"
	"github.com/instanceportal/portal/headerflush"
	"github.com/instanceportal/portal/hostguard"
)

func init() {
	caddy.RegisterModule(PortalFront{})
	caddy.RegisterModule(InternalGuard{})
}

// PortalFront (http.handlers.portal_front) runs just before the proxy of
// every app port: it drops a client's X-Portal-Front and h2c upgrade, and
// the Cloudflare headers of a peer that is not our cloudflared. On the
// Instance Portal entry (mark_internal) it marks each request, after
// vastauth passed it, with the process's front secret, so that the
// internal server admits it whatever its Host (package hostguard). With
// hold_header_flush, a known-length response's headers wait for its body
// rather than being flushed alone (package headerflush).
//
// Caddyfile:
//
//	portal_front [mark_internal] [hold_header_flush]
type PortalFront struct {
	hostguard.FrontConfig
}

// CaddyModule returns the Caddy module information.
func (PortalFront) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.portal_front", New: func() caddy.Module { return new(PortalFront) }}
}

func (f *PortalFront) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	hostguard.PrepareFront(r.Header, r.RemoteAddr, f.MarkInternal)
	// A request that got this far passed vastauth, or needs none (an
	// open port): its connection keeps its place under the caps.
	sharedConnLimiter.Authenticated(r)
	if f.HoldHeaderFlush {
		w = &headerflush.Writer{ResponseWriter: w}
	}
	return next.ServeHTTP(w, r)
}

// InternalGuard (http.handlers.portal_internal_guard) is the first handler
// of the internal server: it answers 403 to a request whose Host is not a
// loopback name unless our front marked it (package hostguard), and removes
// the mark before anything downstream sees the request.
//
// Downstream, the origin checks (the log WebSocket, and any handler that
// compares Origin with Host) compare with r.Host, which is then either a
// loopback name or, from the front, the Host the browser sent to the
// external port after vastauth let it in: the entry's proxy keeps it.
//
// Caddyfile:
//
//	portal_internal_guard {
//		hosts <name...>
//	}
type InternalGuard struct {
	hostguard.Config

	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (InternalGuard) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.portal_internal_guard", New: func() caddy.Module { return new(InternalGuard) }}
}

// Provision fills the defaults.
func (g *InternalGuard) Provision(ctx caddy.Context) error {
	g.logger = ctx.Logger()
	confdecl.FillDefaults(&g.Config, hostguard.Default())
	return nil
}

// Validate checks the host list.
func (g *InternalGuard) Validate() error { return g.Config.Check() }

// foreignHostPage is the 403 body: what to do instead, without echoing
// the Host the client sent.
const foreignHostPage = "This port of the Instance Portal answers only http://localhost:<port>/ " +
	"(an SSH port forward) or requests through the portal's external port, where you log in.\n"

func (g *InternalGuard) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if v, ok := r.Header[hostguard.FrontHeader]; ok {
		fromFront := len(v) == 1 && hostguard.FromFront(v[0])
		delete(r.Header, hostguard.FrontHeader)
		if fromFront {
			return next.ServeHTTP(w, r)
		}
	}
	if hostguard.HostAllowed(r.Host, g.Hosts) {
		return next.ServeHTTP(w, r)
	}
	g.logger.Debug("refused a request for a foreign Host on the internal server",
		zap.String("host", clipText(r.Host, 100)), zap.String("remote_addr", r.RemoteAddr))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusForbidden)
	_, err := io.WriteString(w, foreignHostPage)
	return err
}

// internalGuardRoute is the internal server's first route: every request
// meets the guard.
func internalGuardRoute(warns *[]caddyconfig.Warning) caddyhttp.Route {
	return caddyhttp.Route{HandlersRaw: []json.RawMessage{
		caddyconfig.JSONModuleObject(hostguard.Default(), "handler", "portal_internal_guard", warns),
	}}
}

// portalFrontHandler is the front handler of an app port.
func portalFrontHandler(front hostguard.FrontConfig, warns *[]caddyconfig.Warning) json.RawMessage {
	return caddyconfig.JSONModuleObject(front, "handler", "portal_front", warns)
}

// Interface guards
var (
	_ caddyhttp.MiddlewareHandler = (*PortalFront)(nil)
	_ caddyhttp.MiddlewareHandler = (*InternalGuard)(nil)
	_ caddy.Provisioner           = (*InternalGuard)(nil)
	_ caddy.Validator             = (*InternalGuard)(nil)
)
