package caddymodules

import (
	"fmt"
	"net/http"
	"runtime"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/instanceportal/portal/gpumetrics"
	"github.com/instanceportal/portal/gpumetrics/nvmlgpu"
	"github.com/instanceportal/portal/portalconfig"
)

func init() {
	caddy.RegisterModule(GPUMetrics{})
}

// gpuMetricsFor is the handler that serves the metrics in format. The JSON
// and the Prometheus routes share one pooled collector (same settings, same
// key): the dashboard and a scraper cost one sweep.
func gpuMetricsFor(plan *portalconfig.Plan, format string) GPUMetrics {
	return GPUMetrics{Config: gpumetrics.Config{Format: format, Workspace: plan.Settings.Workspace}}
}

// gpuCollectors keeps one gpumetrics.Collector per settings, shared by every
// handler instance and surviving config reloads: a reload must not
// re-initialise NVML, lose the CPU baseline or start a second sampler.
var gpuCollectors = newSharedPool[*gpumetrics.Collector]("http.handlers.gpu_metrics")

// gpuSources builds a collector's GPU sources: NVML, then rocm-smi unless
// it is off. Tests replace it with stand-ins.
var gpuSources = func(c gpumetrics.Config) gpumetrics.GPUSource {
	sources := []gpumetrics.GPUSource{nvmlgpu.NewSource(nvmlgpu.Real())}
	if c.ROCmSMI != "off" {
		sources = append(sources, &gpumetrics.ROCmSource{Bin: c.ROCmSMI})
	}
	return gpumetrics.FirstAvailable(sources...)
}

// GPUMetrics serves GPU and system metrics from a cached sample: JSON for
// the dashboard or the Prometheus text format with dcgm-exporter's metric
// names. Without a GPU (or a driver) it still answers 200, with
// "available": false, the reason, and the system figures. Its JSON is
// gpumetrics.Config's (docs/gpu_metrics.md).
//
// NVML is initialised inside the collector's sampler goroutine on the
// first request, never in Provision, so `caddy validate` and a reload
// cannot hang on a stuck driver. See docs/gpu_metrics.md.
type GPUMetrics struct {
	gpumetrics.Config

	resolved  gpumetrics.Config // placeholders resolved, defaults filled
	pooled    *shared[*gpumetrics.Collector]
	collector *gpumetrics.Collector
}

// CaddyModule returns the Caddy module information.
func (GPUMetrics) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.gpu_metrics",
		New: func() caddy.Module { return new(GPUMetrics) },
	}
}

// Provision resolves placeholders, applies the defaults, checks the result
// and takes the shared collector for these settings. Building a collector
// does no I/O; its sampler starts with the first request.
func (h *GPUMetrics) Provision(ctx caddy.Context) error {
	c := h.Config
	expandPlaceholders(&c.Workspace, &c.Root, &c.ROCmSMI)
	c = c.WithDefaults()
	if err := c.Check(); err != nil {
		return moduleErr(h, err)
	}
	h.resolved = c
	// The format is not part of the key: JSON and Prometheus handlers with
	// the same settings read the same samples. The collector outlives this
	// config: it owns its context, which Close cancels when the last config
	// using it is cleaned up.
	pooled, err := gpuCollectors.hold(c.SamplerKey(), h, ctx.Logger(), func(log *zap.Logger) (*gpumetrics.Collector, error) {
		return gpumetrics.NewCollector(c, gpumetrics.Sources{GPU: gpuSources(c), System: c.SystemReader(runtime.NumCPU())},
			log.Named("sampler")), nil
	})
	if err != nil {
		return moduleErr(h, err)
	}
	h.pooled, h.collector = pooled, pooled.Value
	return nil
}

// Validate checks the settings as Provision resolved them (Provision has
// refused bad ones before taking the pooled collector).
func (h *GPUMetrics) Validate() error { return h.resolved.Check() }

// Cleanup releases this config's hold on the shared collector; the last
// holder's release stops the sampler and shuts NVML down. Safe after a
// failed Provision.
func (h *GPUMetrics) Cleanup() error {
	err := h.pooled.release()
	h.pooled = nil
	return err
}

// ServeHTTP writes the latest sample. It is a terminal handler: next is
// never called. It never waits on a sweep except for the very first one
// (bounded by the timeout).
func (h *GPUMetrics) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return caddyhttp.Error(http.StatusMethodNotAllowed, fmt.Errorf("gpu_metrics: method %s", r.Method))
	}
	s := h.collector.Latest(r.Context())
	var body []byte
	hdr := w.Header()
	if h.resolved.Format == "prometheus" {
		// The sample's rendering is shared; the portal's own states are
		// read per scrape and appended.
		body = append(append([]byte{}, s.Prometheus()...), gpumetrics.RenderExtras(metricsExtras(r.Context()))...)
		hdr.Set("Content-Type", gpumetrics.PrometheusContentType)
	} else {
		body = s.JSON()
		hdr.Set("Content-Type", "application/json")
	}
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	_, err := w.Write(body)
	return err
}

// Interface guards
var (
	_ caddy.Module                = (*GPUMetrics)(nil)
	_ caddy.Provisioner           = (*GPUMetrics)(nil)
	_ caddy.Validator             = (*GPUMetrics)(nil)
	_ caddy.CleanerUpper          = (*GPUMetrics)(nil)
	_ caddyhttp.MiddlewareHandler = (*GPUMetrics)(nil)
)
