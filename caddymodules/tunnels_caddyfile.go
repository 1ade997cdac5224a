package caddymodules

import (
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/instanceportal/portal/confdecl"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("tunnels", parseTunnelsGlobalOption)
	handlerDirective[TunnelsAPI]("tunnels_api", "reverse_proxy")
}

// parseTunnelsGlobalOption turns the `tunnels` global option into the app.
func parseTunnelsGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	if existing != nil {
		return nil, d.Err("the tunnels global option may appear only once")
	}
	app := new(TunnelsApp)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "tunnels", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile sets up the app from the global option. Each option
// is a field of tunnels.Config under its JSON name (docs/tunnels.md lists
// them), plus `backoff <base> <max>` for backoff_base and backoff_max:
//
//	tunnels {
//		cloudflared         <path>
//		protocol            auto|http2|quic
//		log_dir             <dir>
//		state_dir           <dir>
//		quick               <target>...
//		named_token         {env.CF_TUNNEL_TOKEN}
//		ready_timeout       <duration>
//		backoff             <base> <max>
//		max_tunnels         <n>
//		...
//	}
//
// quick may repeat; every other option may appear once. The settings are
// checked here too, so a bad one is reported with the file and line.
func (a *TunnelsApp) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the option name
	if d.NextArg() {
		return d.ArgErr()
	}
	const module = "tunnels"
	backoffGiven := false
	special := map[string]func(args []string) error{
		"backoff": func(args []string) error {
			if backoffGiven {
				return d.Errf("%s: duplicate option %q", module, "backoff")
			}
			backoffGiven = true
			if len(args) != 2 {
				return d.ArgErr()
			}
			for i, dst := range []*confdecl.Duration{&a.BackoffBase, &a.BackoffMax} {
				v, err := confdecl.ParseDuration(args[i])
				if err != nil || v < 0 {
					return d.Errf("%s: backoff %q: want two durations such as 2s 5m", module, args[i])
				}
				*dst = confdecl.Duration(v)
			}
			return nil
		},
	}
	if err := unmarshalConfigBlock(d, module, &a.Config, special); err != nil {
		return err
	}
	if err := a.Config.WithDefaults().Check(); err != nil {
		return d.Errf("%s: %v", module, err)
	}
	return nil
}

// parseTunnelsAPICaddyfile delegates to TunnelsAPI.UnmarshalCaddyfile.
// UnmarshalCaddyfile sets up the handler:
//
//	tunnels_api [<matcher>] {
//		base_path <path>
//	}
//
// It answers under base_path (default /api/tunnels) and passes any other
// request on, e.g. `tunnels_api /api/tunnels*`.
func (h *TunnelsAPI) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "base_path":
			if h.BasePath != "" {
				return d.Err("duplicate option base_path")
			}
			if !d.NextArg() {
				return d.ArgErr()
			}
			h.BasePath = d.Val()
			if h.BasePath == "" || h.BasePath[0] != '/' {
				return d.Errf("base_path %q must start with /", h.BasePath)
			}
			if d.NextArg() {
				return d.ArgErr()
			}
		default:
			return d.Errf("unrecognized tunnels_api option %q", d.Val())
		}
	}
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*TunnelsApp)(nil)
	_ caddyfile.Unmarshaler = (*TunnelsAPI)(nil)
)
