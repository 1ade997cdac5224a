package caddymodules

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func init() {
	handlerDirective[PortalProcesses]("portal_processes", "file_server")
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
	return unmarshalConfigDirective(d, "portal_processes", &h.Config, nil)
}

// Interface guard
var _ caddyfile.Unmarshaler = (*PortalProcesses)(nil)
