package caddymodules

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("portal_front", parsePortalFrontCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("portal_front", httpcaddyfile.Before, "reverse_proxy")
	httpcaddyfile.RegisterHandlerDirective("portal_internal_guard", parseInternalGuardCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("portal_internal_guard", httpcaddyfile.Before, "map")
}

func parsePortalFrontCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	f := new(PortalFront)
	err := f.UnmarshalCaddyfile(h.Dispenser)
	return f, err
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

func parseInternalGuardCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	g := new(InternalGuard)
	err := g.UnmarshalCaddyfile(h.Dispenser)
	return g, err
}

// UnmarshalCaddyfile reads the directive and its optional block; every
// option is a hostguard.Config field, by its JSON name.
func (g *InternalGuard) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive
	if d.NextArg() {
		return d.ArgErr()
	}
	return unmarshalConfigBlock(d, "portal_internal_guard", &g.Config, nil)
}

var (
	_ caddyfile.Unmarshaler = (*PortalFront)(nil)
	_ caddyfile.Unmarshaler = (*InternalGuard)(nil)
)
