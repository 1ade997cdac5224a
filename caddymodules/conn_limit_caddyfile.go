package caddymodules

import "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

// UnmarshalCaddyfile reads the block after the wrapper's name; every
// option is a connlimit.Config field, by its JSON name.
func (c *ConnLimit) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the wrapper's name
	if d.NextArg() {
		return d.ArgErr()
	}
	return unmarshalConfigBlock(d, "portal_connlimit", &c.Config, nil)
}

var _ caddyfile.Unmarshaler = (*ConnLimit)(nil)
