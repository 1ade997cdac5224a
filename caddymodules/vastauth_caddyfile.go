package caddymodules

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("vastauth", parseVastAuthCaddyfile)
	// It must run before anything that would serve or proxy the request.
	httpcaddyfile.RegisterDirectiveOrder("vastauth", httpcaddyfile.Before, "basic_auth")
}

func parseVastAuthCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(VastAuth)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax
// (every option may be left out; see VastAuth for the defaults):
//
//	vastauth [<matcher>] {
//	    username            <name>
//	    secret              <value> [<value>...]   # repeatable; {env.X} placeholders
//	    cookie_name         <name>
//	    state_dir           <dir>
//	    realm               <text>
//	    session_ttl         <duration>
//	    failure_limit       <count> [<window>]
//	    max_tracked_clients <count>
//	}
func (h *VastAuth) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		opt := d.Val()
		if seen[opt] && opt != "secret" {
			return d.Errf("vastauth: duplicate option %q", opt)
		}
		seen[opt] = true
		args := d.RemainingArgs()
		if d.NextBlock(1) {
			return d.Errf("vastauth: option %q takes no block", opt)
		}
		one := func() (string, error) {
			if len(args) != 1 {
				return "", d.ArgErr()
			}
			return args[0], nil
		}
		switch opt {
		case "secret":
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.Secrets = append(h.Secrets, args...)
		case "username", "cookie_name", "state_dir", "realm":
			v, err := one()
			if err != nil {
				return err
			}
			switch opt {
			case "username":
				h.Username = v
			case "cookie_name":
				h.CookieName = v
			case "state_dir":
				h.StateDir = v
			case "realm":
				h.Realm = v
			}
		case "session_ttl":
			v, err := one()
			if err != nil {
				return err
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur < 1e9 {
				return d.Errf("vastauth: session_ttl %q: want a duration of at least 1s", v)
			}
			h.SessionTTL = caddy.Duration(dur)
		case "failure_limit":
			if len(args) < 1 || len(args) > 2 {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(args[0])
			if err != nil || n < 1 {
				return d.Errf("vastauth: failure_limit %q: want a count of at least 1", args[0])
			}
			h.FailureLimit = n
			if len(args) == 2 {
				dur, err := caddy.ParseDuration(args[1])
				if err != nil || dur < 1e9 {
					return d.Errf("vastauth: failure_limit window %q: want a duration of at least 1s", args[1])
				}
				h.FailureWindow = caddy.Duration(dur)
			}
		case "max_tracked_clients":
			v, err := one()
			if err != nil {
				return err
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return d.Errf("vastauth: max_tracked_clients %q: want a count of at least 1", v)
			}
			h.MaxTrackedClients = n
		default:
			return d.Errf("vastauth: unrecognized option %q", opt)
		}
	}
	return nil
}

// Interface guards
var _ caddyfile.Unmarshaler = (*VastAuth)(nil)
