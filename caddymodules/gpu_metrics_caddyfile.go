package caddymodules

import (
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("gpu_metrics", parseGPUMetricsCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("gpu_metrics", httpcaddyfile.Before, "file_server")
}

func parseGPUMetricsCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(GPUMetrics)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	gpu_metrics [json|prometheus] {
//	    interval  <duration>
//	    timeout   <duration>
//	    workspace <path>
//	    root      <path>
//	    rocm_smi  <program>|off
//	}
func (h *GPUMetrics) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		switch d.Val() {
		case "json", "prometheus":
			h.Format = d.Val()
		default:
			return d.Errf("gpu_metrics: format %q: want json or prometheus", d.Val())
		}
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("gpu_metrics: duplicate option %q", opt)
		}
		seen[opt] = true
		var arg string
		if !d.AllArgs(&arg) {
			return d.ArgErr()
		}
		switch opt {
		case "interval", "timeout":
			dur, err := caddy.ParseDuration(arg)
			if err != nil || dur <= 0 {
				return d.Errf("gpu_metrics: %s %q: want a positive duration", opt, arg)
			}
			if opt == "interval" {
				if dur < 100*time.Millisecond {
					return d.Errf("gpu_metrics: interval %q: want at least 100ms", arg)
				}
				h.Interval = caddy.Duration(dur)
			} else {
				h.Timeout = caddy.Duration(dur)
			}
		case "workspace":
			h.Workspace = arg
		case "root":
			h.Root = arg
		case "rocm_smi":
			h.ROCmSMI = arg
		default:
			return d.Errf("gpu_metrics: unrecognized option %q", opt)
		}
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*GPUMetrics)(nil)
