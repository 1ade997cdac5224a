package caddymodules

import (
	"time"

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
	const module = "vastauth"
	strs := map[string]*string{"username": &h.Username, "cookie_name": &h.CookieName, "state_dir": &h.StateDir, "realm": &h.Realm}
	return forEachOption(d, module, []string{"secret"}, func(opt string, args []string) error {
		var err error
		switch {
		case opt == "secret":
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.Secrets = append(h.Secrets, args...)
		case strs[opt] != nil:
			*strs[opt], err = oneArg(d, args)
		case opt == "session_ttl":
			var v string
			if v, err = oneArg(d, args); err == nil {
				h.SessionTTL, err = durationArg(d, module, opt, v, time.Second)
			}
		case opt == "failure_limit": // <count> [<window>]
			if len(args) < 1 || len(args) > 2 {
				return d.ArgErr()
			}
			if h.FailureLimit, err = countArg(d, module, opt, args[0], 1); err == nil && len(args) == 2 {
				h.FailureWindow, err = durationArg(d, module, "failure_limit window", args[1], time.Second)
			}
		case opt == "max_tracked_clients":
			var v string
			if v, err = oneArg(d, args); err == nil {
				h.MaxTrackedClients, err = countArg(d, module, opt, v, 1)
			}
		default:
			return d.Errf("vastauth: unrecognized option %q", opt)
		}
		return err
	})
}

// Interface guards
var _ caddyfile.Unmarshaler = (*VastAuth)(nil)
