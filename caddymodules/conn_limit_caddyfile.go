package caddymodules

import "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

// UnmarshalCaddyfile reads the block after the wrapper's name; every
// option is a connlimit.Config field, by its JSON name.
func (c *ConnLimit) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return unmarshalConfigDirective(d, "portal_connlimit", &c.Config, nil)
}

var _ caddyfile.Unmarshaler = (*ConnLimit)(nil)
