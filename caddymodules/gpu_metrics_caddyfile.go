package caddymodules

import (
	"time"

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
	const module = "gpu_metrics"
	return forEachOption(d, module, nil, func(opt string, args []string) error {
		arg, err := oneArg(d, args)
		if err != nil {
			return err
		}
		switch opt {
		case "interval":
			h.Interval, err = durationArg(d, module, opt, arg, 100*time.Millisecond)
		case "timeout":
			h.Timeout, err = durationArg(d, module, opt, arg, positive)
		case "workspace":
			h.Workspace = arg
		case "root":
			h.Root = arg
		case "rocm_smi":
			h.ROCmSMI = arg
		default:
			return d.Errf("gpu_metrics: unrecognized option %q", opt)
		}
		return err
	})
}

// Interface guard
var _ caddyfile.Unmarshaler = (*GPUMetrics)(nil)
