package caddymodules

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("logstream", parseLogStreamCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("logstream", httpcaddyfile.Before, "file_server")
}

func parseLogStreamCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	ls := new(LogStream)
	err := ls.UnmarshalCaddyfile(h.Dispenser)
	return ls, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	logstream [<dir>] {
//	    dir             <dir>
//	    ring_lines      <n>
//	    ring_bytes      <n>
//	    block_lines     <n>
//	    max_line_bytes  <n>
//	    poll_interval   <duration>
//	    force_polling
//	    allowed_origins <pattern...>
//	    queue           <n>
//	    write_timeout   <duration>
//	    ping_interval   <duration>
//	}
func (h *LogStream) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		h.Dir = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("logstream: duplicate option %q", opt)
		}
		seen[opt] = true
		switch opt {
		case "dir":
			if h.Dir != "" {
				return d.Errf("logstream: directory given twice")
			}
			if !d.AllArgs(&h.Dir) {
				return d.ArgErr()
			}
		case "ring_lines", "ring_bytes", "block_lines", "max_line_bytes", "queue":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return d.Errf("logstream: %s: want a non-negative integer, got %q", opt, v)
			}
			switch opt {
			case "ring_lines":
				h.RingLines = n
			case "ring_bytes":
				h.RingBytes = n
			case "block_lines":
				h.BlockLines = n
			case "max_line_bytes":
				h.MaxLineBytes = n
			case "queue":
				h.Queue = n
			}
		case "poll_interval", "write_timeout", "ping_interval":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return d.Errf("logstream: %s: want a positive duration, got %q", opt, v)
			}
			switch opt {
			case "poll_interval":
				h.PollInterval = caddy.Duration(dur)
			case "write_timeout":
				h.WriteTimeout = caddy.Duration(dur)
			case "ping_interval":
				h.PingInterval = caddy.Duration(dur)
			}
		case "force_polling":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.ForcePolling = true
		case "allowed_origins":
			h.AllowedOrigins = d.RemainingArgs()
			if len(h.AllowedOrigins) == 0 {
				return d.ArgErr()
			}
		default:
			return d.Errf("logstream: unrecognized option %q", opt)
		}
	}
	return nil
}

// Interface guards
var _ caddyfile.Unmarshaler = (*LogStream)(nil)
