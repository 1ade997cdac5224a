package caddymodules

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func init() {
	handlerDirective[LogStream]("logstream", "file_server")
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	logstream [<dir>] {
//	    <option> <value>
//	}
//
// Each option is a field of logstream.Config under its JSON name (dir,
// ring_lines, poll_interval, allowed_origins, …; see docs/logstream.md),
// parsed by the shared walker: one argument each, lists may repeat,
// booleans take none.
func (h *LogStream) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		h.Dir = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	dirArg := h.Dir != ""
	special := map[string]func(args []string) error{
		"dir": func(args []string) error {
			if dirArg {
				return d.Errf("logstream: directory given twice (argument and dir)")
			}
			if h.Dir != "" {
				return d.Errf("logstream: duplicate option \"dir\"")
			}
			v, err := oneArg(d, args)
			h.Dir = v
			return err
		},
	}
	return unmarshalConfigBlock(d, "logstream", &h.Config, special)
}

// Interface guards
var _ caddyfile.Unmarshaler = (*LogStream)(nil)
