package caddymodules

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func init() {
	handlerDirective[PortalLinks]("portal_links", "file_server")
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
	return unmarshalConfigDirective(d, "portal_links", &h.Config, nil)
}

// Interface guard
var _ caddyfile.Unmarshaler = (*PortalLinks)(nil)
