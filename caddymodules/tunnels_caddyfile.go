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
	const module = "tunnels"
	return forEachOption(d, module, []string{"quick"}, func(opt string, args []string) error {
		var err error
		switch {
		case strs[opt] != nil:
			*strs[opt], err = oneArg(d, args)
		case durations[opt] != nil:
			var v string
			if v, err = oneArg(d, args); err == nil {
				*durations[opt], err = durationArg(d, module, opt, v, 0)
			}
		case opt == "backoff": // <base> <max>
			if len(args) != 2 {
				return d.ArgErr()
			}
			if a.BackoffBase, err = durationArg(d, module, "backoff base", args[0], positive); err != nil {
				return err
			}
			if a.BackoffMax, err = durationArg(d, module, "backoff max", args[1], time.Duration(a.BackoffBase)); err != nil {
				return err
			}
		case opt == "quick":
			if len(args) == 0 {
				return d.ArgErr()
			}
			for _, t := range args {
				a.Quick = append(a.Quick, QuickTunnelConfig{Target: t})
			}
		case opt == "named_token":
			var v string
			if v, err = oneArg(d, args); err != nil {
				return err
			}
			if !isPlaceholder(v) {
				return d.Err("named_token must be a placeholder such as {env.CF_TUNNEL_TOKEN}, not a literal token")
			}
			a.Named = &NamedTunnelConfig{Token: v}
		default:
			return d.Errf("unrecognized tunnels option %q", opt)
		}
		return err
	})
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
