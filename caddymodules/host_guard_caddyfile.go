package caddymodules

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func init() {
	handlerDirective[PortalFront]("portal_front", "reverse_proxy")
	handlerDirective[InternalGuard]("portal_internal_guard", "map")
}

// UnmarshalCaddyfile reads `portal_front [mark_internal] [hold_header_flush]`.
func (f *PortalFront) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive
	for _, arg := range d.RemainingArgs() {
		switch {
		case arg == "mark_internal" && !f.MarkInternal:
			f.MarkInternal = true
		case arg == "hold_header_flush" && !f.HoldHeaderFlush:
			f.HoldHeaderFlush = true
		default:
			return d.Errf("portal_front: want mark_internal and/or hold_header_flush, got %q", arg)
		}
	}
	if d.NextBlock(0) {
		return d.Errf("portal_front: takes no block")
	}
	return nil
}

// UnmarshalCaddyfile reads the directive and its optional block; every
// option is a hostguard.Config field, by its JSON name.
func (g *InternalGuard) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return unmarshalConfigDirective(d, "portal_internal_guard", &g.Config, nil)
}

var (
	_ caddyfile.Unmarshaler = (*PortalFront)(nil)
	_ caddyfile.Unmarshaler = (*InternalGuard)(nil)
)
