package caddymodules

import (
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("tunnels", parseTunnelsGlobalOption)
	httpcaddyfile.RegisterHandlerDirective("tunnels_api", parseTunnelsAPICaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("tunnels_api", httpcaddyfile.Before, "reverse_proxy")
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

// UnmarshalCaddyfile sets up the app from the global option:
//
//	tunnels {
//		cloudflared         <path>
//		protocol            auto|http2|quic
//		log_dir             <dir>
//		state_dir           <dir>
//		quick               <target>...
//		named_token         {env.CF_TUNNEL_TOKEN}
//		ready_timeout       <duration>
//		unready_restart     <duration>
//		kill_grace          <duration>
//		poll_interval       <duration>
//		backoff             <base> <max>
//		failure_decay       <duration>
//		rate_limit_cooldown <duration>
//		start_spacing       <duration>
//	}
//
// quick may repeat; every other option may appear once.
func (a *TunnelsApp) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the option name
	if d.NextArg() {
		return d.ArgErr()
	}
	durations := map[string]*caddy.Duration{
		"ready_timeout": &a.ReadyTimeout, "unready_restart": &a.UnreadyRestart, "kill_grace": &a.KillGrace,
		"poll_interval": &a.PollInterval, "failure_decay": &a.FailureDecay,
		"rate_limit_cooldown": &a.RateLimitCooldown, "start_spacing": &a.StartSpacing,
	}
	strs := map[string]*string{"cloudflared": &a.Cloudflared, "protocol": &a.Protocol, "log_dir": &a.LogDir, "state_dir": &a.StateDir}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		opt := d.Val()
		if opt != "quick" {
			if seen[opt] {
				return d.Errf("duplicate option %q", opt)
			}
			seen[opt] = true
		}
		args := d.RemainingArgs()
		if d.NextBlock(1) {
			return d.Errf("%s takes no block", opt)
		}
		switch {
		case strs[opt] != nil:
			if len(args) != 1 {
				return d.ArgErr()
			}
			*strs[opt] = args[0]
		case durations[opt] != nil:
			if len(args) != 1 {
				return d.ArgErr()
			}
			v, err := caddy.ParseDuration(args[0])
			if err != nil || v < 0 {
				return d.Errf("%s: invalid duration %q", opt, args[0])
			}
			*durations[opt] = caddy.Duration(v)
		case opt == "backoff":
			if len(args) != 2 {
				return d.ArgErr()
			}
			var vs [2]time.Duration
			for i, s := range args {
				v, err := caddy.ParseDuration(s)
				if err != nil || v <= 0 {
					return d.Errf("backoff: invalid duration %q", s)
				}
				vs[i] = v
			}
			if vs[1] < vs[0] {
				return d.Errf("backoff: max %s is below base %s", args[1], args[0])
			}
			a.BackoffBase, a.BackoffMax = caddy.Duration(vs[0]), caddy.Duration(vs[1])
		case opt == "quick":
			if len(args) == 0 {
				return d.ArgErr()
			}
			for _, t := range args {
				a.Quick = append(a.Quick, QuickTunnelConfig{Target: t})
			}
		case opt == "named_token":
			if len(args) != 1 {
				return d.ArgErr()
			}
			if !isPlaceholder(args[0]) {
				return d.Err("named_token must be a placeholder such as {env.CF_TUNNEL_TOKEN}, not a literal token")
			}
			a.Named = &NamedTunnelConfig{Token: args[0]}
		default:
			return d.Errf("unrecognized tunnels option %q", opt)
		}
	}
	return nil
}

// parseTunnelsAPICaddyfile delegates to TunnelsAPI.UnmarshalCaddyfile.
func parseTunnelsAPICaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	api := new(TunnelsAPI)
	err := api.UnmarshalCaddyfile(h.Dispenser)
	return api, err
}

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
