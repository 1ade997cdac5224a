package caddymodules

import (
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/instanceportal/portal/portalconfig"
	"github.com/instanceportal/portal/portallinks"
)

func init() {
	caddy.RegisterModule(PortalLinks{})
}

// linksFor is the handler that serves the Tools & Help cards, with the
// plan's facts for the built-in ones.
func linksFor(plan *portalconfig.Plan) PortalLinks {
	s := plan.Settings
	cfg := portallinks.Config{
		File: s.LinksFile, Inline: s.Links, Username: s.WebUsername,
		SSHHost: s.PublicIP, SSHPort: s.PublicPorts[22],
	}
	if plan.Portal != nil {
		cfg.PortalPort = plan.Portal.InternalPort
	}
	return PortalLinks{Config: cfg}
}

// PortalLinks serves GET /api/links: the Tools & Help cards (built-in help,
// the template's links file, PORTAL_LINKS) and the warnings about what was
// left out, as JSON (docs/processes.md). The file is re-read when it
// changes; each warning is logged once.
type PortalLinks struct {
	portallinks.Config

	loader *portallinks.Loader
}

// CaddyModule returns the Caddy module information.
func (PortalLinks) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.portal_links", New: func() caddy.Module { return new(PortalLinks) }}
}

// Provision builds the loader; the file is read at the first request.
func (h *PortalLinks) Provision(ctx caddy.Context) error {
	logger := ctx.Logger()
	loader, err := portallinks.NewLoader(h.Config, func(w string) {
		logger.Warn("Tools & Help link skipped or trimmed", zap.String("warning", w))
	})
	if err != nil {
		return moduleErr(h, err)
	}
	h.loader = loader
	return nil
}

// Validate checks the settings.
func (h *PortalLinks) Validate() error {
	return moduleErr(h, h.Config.Check())
}

// ServeHTTP answers the cards; it is terminal.
func (h *PortalLinks) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	return serveReadOnly(w, r, func() any {
		cards, warnings := h.loader.Cards(requestOrigin(r))
		return map[string]any{"cards": cards, "warnings": warnings}
	})
}

// requestOrigin is the origin the browser used. The portal server is
// reached through the app server's reverse_proxy, which keeps Host and
// sets X-Forwarded-Proto (https through a tunnel), or directly over an SSH
// forward. portallinks checks the result before using it.
func requestOrigin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	switch p := r.Header.Get("X-Forwarded-Proto"); p {
	case "http", "https":
		scheme = p
	}
	return scheme + "://" + r.Host
}

// Interface guards
var (
	_ caddy.Provisioner           = (*PortalLinks)(nil)
	_ caddy.Validator             = (*PortalLinks)(nil)
	_ caddyhttp.MiddlewareHandler = (*PortalLinks)(nil)
)
