package caddymodules

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func init() {
	// It must run before anything that would serve or proxy the request.
	handlerDirective[VastAuth]("vastauth", "basic_auth")
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Each option
// is a field of vastauth.Config, by its JSON name (see docs/vastauth.md for
// the table); every one may be left out. The module reads no environment
// variable by itself: name the secrets, usually as placeholders.
//
//	vastauth [<matcher>] {
//	    secrets             <value> [<value>...]   # repeatable; {env.X} placeholders
//	    state_dir           <dir>
//	    username            <name>
//	    cookie_name         <name>
//	    realm               <text>
//	    session_ttl         <duration>
//	    failure_limit       <count>
//	    failure_window      <duration>
//	    max_tracked_clients <count>
//	    strip_only          [true|false]
//	}
func (h *VastAuth) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return unmarshalConfigDirective(d, "vastauth", &h.Config, nil)
}

// Interface guards
var _ caddyfile.Unmarshaler = (*VastAuth)(nil)
