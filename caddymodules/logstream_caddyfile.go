package caddymodules

import (
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
	const module = "logstream"
	ints := map[string]*int{"ring_lines": &h.RingLines, "ring_bytes": &h.RingBytes, "block_lines": &h.BlockLines,
		"max_line_bytes": &h.MaxLineBytes, "queue": &h.Queue}
	durations := map[string]*caddy.Duration{"poll_interval": &h.PollInterval, "write_timeout": &h.WriteTimeout,
		"ping_interval": &h.PingInterval}
	return forEachOption(d, module, nil, func(opt string, args []string) error {
		switch {
		case opt == "dir":
			if h.Dir != "" {
				return d.Errf("logstream: directory given twice")
			}
			v, err := oneArg(d, args)
			h.Dir = v
			return err
		case ints[opt] != nil:
			v, err := oneArg(d, args)
			if err == nil {
				*ints[opt], err = countArg(d, module, opt, v, 0)
			}
			return err
		case durations[opt] != nil:
			v, err := oneArg(d, args)
			if err == nil {
				*durations[opt], err = durationArg(d, module, opt, v, positive)
			}
			return err
		case opt == "force_polling":
			if len(args) > 0 {
				return d.ArgErr()
			}
			h.ForcePolling = true
		case opt == "allowed_origins":
			if len(args) == 0 {
				return d.ArgErr()
			}
			h.AllowedOrigins = args
		default:
			return d.Errf("logstream: unrecognized option %q", opt)
		}
		return nil
	})
}

// Interface guards
var _ caddyfile.Unmarshaler = (*LogStream)(nil)
