package caddymodules

import (
	"strconv"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/instanceportal/portal/appstate"
	"github.com/instanceportal/portal/portalconfig"
)

func init() {
	handlerDirective[PortalApps]("portal_apps", "file_server")
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. The options
// are appstate.Config's JSON keys (supervisord's included); `app` adds one
// app, as portal.yaml would list it, and may repeat. Syntax:
//
//	portal_apps [<matcher>] {
//	    app               <name> <hostname> <internal_port>
//	    socket            <path>
//	    skip_dir          <path>
//	    probe_timeout     <duration>
//	    probe_cache       <duration>
//	    probe_concurrency <n>
//	}
func (h *PortalApps) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return unmarshalConfigDirective(d, "portal_apps", &h.Config, map[string]func(args []string) error{
		"app": func(args []string) error {
			if len(args) != 3 {
				return d.Errf("portal_apps: app: want <name> <hostname> <internal_port>")
			}
			port, err := strconv.Atoi(args[2])
			if err != nil || port < 1 || port > 65535 {
				return d.Errf("portal_apps: app %q: internal port %q: want 1-65535", args[0], args[2])
			}
			h.Apps = append(h.Apps, appstate.App{Key: args[0], AppInfo: portalconfig.AppInfo{
				Name: args[0], Hostname: args[1], InternalPort: port, ExternalPort: port, OpenPath: "/",
			}})
			return nil
		},
	})
}

// Interface guard
var _ caddyfile.Unmarshaler = (*PortalApps)(nil)
