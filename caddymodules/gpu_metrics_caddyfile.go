package caddymodules

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func init() {
	handlerDirective[GPUMetrics]("gpu_metrics", "file_server")
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Each option
// is a field of gpumetrics.Config under its JSON name (docs/gpu_metrics.md
// lists them); the format may also be given as the argument:
//
//	gpu_metrics [json|prometheus] {
//	    interval  <duration>
//	    timeout   <duration>
//	    workspace <path>
//	    root      <path>
//	    rocm_smi  <program>|off
//	}
//
// The settings are checked here too, so a bad one is reported with the
// file and line.
func (h *GPUMetrics) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		h.Format = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	const module = "gpu_metrics"
	if err := unmarshalConfigBlock(d, module, &h.Config, nil); err != nil {
		return err
	}
	if err := h.Config.WithDefaults().Check(); err != nil {
		return d.Errf("%s: %v", module, err)
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*GPUMetrics)(nil)
