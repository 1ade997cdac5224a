package caddymodules

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("portal_processes", parsePortalProcessesCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("portal_processes", httpcaddyfile.Before, "file_server")
}

func parsePortalProcessesCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(PortalProcesses)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. The options
// are supervisor.Config's JSON keys. Syntax:
//
//	portal_processes [<matcher>] {
//	    socket       <path>
//	    skip_dir     <path>
//	    unstoppable  <program...>
//	    call_timeout <duration>
//	    wait_timeout <duration>
//	}
func (h *PortalProcesses) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	return unmarshalConfigBlock(d, "portal_processes", &h.Config, nil)
}

// Interface guard
var _ caddyfile.Unmarshaler = (*PortalProcesses)(nil)
