package caddymodules

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("portal_links", parsePortalLinksCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("portal_links", httpcaddyfile.Before, "file_server")
}

func parsePortalLinksCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(PortalLinks)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. The options
// are portallinks.Config's JSON keys. Syntax:
//
//	portal_links [<matcher>] {
//	    file        <path>
//	    inline      "Label|URL|Description,…"
//	    username    <name>
//	    ssh_host    <address>
//	    ssh_port    <port>
//	    portal_port <port>
//	    docs_url    <url>
//	}
func (h *PortalLinks) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	return unmarshalConfigBlock(d, "portal_links", &h.Config, nil)
}

// Interface guard
var _ caddyfile.Unmarshaler = (*PortalLinks)(nil)
