package caddymodules

import (
	"fmt"
	"net/http"
	"path/filepath"
	"runtime"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/instanceportal/portal/gpumetrics"
	"github.com/instanceportal/portal/gpumetrics/nvmlgpu"
	"github.com/instanceportal/portal/portalconfig"
)

func init() {
	caddy.RegisterModule(GPUMetrics{})
}

// gpuMetricsRoute serves the metrics in format at path. The JSON and the
// Prometheus routes share one pooled collector (same settings, same key):
// the dashboard and a scraper cost one sweep.
func gpuMetricsRoute(plan *portalconfig.Plan, path, format string, warns *[]caddyconfig.Warning) caddyhttp.Route {
	h := GPUMetrics{Format: format, Workspace: plan.Settings.Workspace}
	return pathRoute(warns, []string{path}, caddyconfig.JSONModuleObject(h, "handler", "gpu_metrics", warns))
}

// gpuCollectors keeps one gpumetrics.Collector per settings, shared by every
// handler instance and surviving config reloads: a reload must not
// re-initialise NVML, lose the CPU baseline or start a second sampler.
var gpuCollectors = caddy.NewUsagePool()

// GPUMetrics serves GPU and system metrics from a cached sample: JSON for
// the dashboard or the Prometheus text format with dcgm-exporter's metric
// names. Without a GPU (or a driver) it still answers 200, with
// "available": false, the reason, and the system figures.
//
// NVML is initialised inside the collector's sampler goroutine on the
// first request, never in Provision, so `caddy validate` and a reload
// cannot hang on a stuck driver. See docs/gpu_metrics.md.
type GPUMetrics struct {
	// Format is "json" or "prometheus". Default: json.
	Format string `json:"format,omitempty"`
	// Interval is the time between sweeps. Default: 1s.
	Interval caddy.Duration `json:"interval,omitempty"`
	// Timeout bounds how long a request waits for a sweep; a sweep that
	// takes longer is served from the previous sample, marked stale.
	// Default: 2s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// Workspace is reported as a second disk when it is on another
	// filesystem than /. Placeholders are resolved. Default: none.
	Workspace string `json:"workspace,omitempty"`
	// Root is prepended to /proc and /sys (a host's root mounted into a
	// sidecar container). Default: /.
	Root string `json:"root,omitempty"`
	// ROCmSMI is the rocm-smi program used for AMD GPUs when NVML is
	// absent, or "off". Default: rocm-smi (looked up on PATH).
	ROCmSMI string `json:"rocm_smi,omitempty"`

	poolKey   string
	collector *gpumetrics.Collector
	logger    *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (GPUMetrics) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.gpu_metrics",
		New: func() caddy.Module { return new(GPUMetrics) },
	}
}

// Provision takes the shared collector for these settings. Building a
// collector does no I/O; its sampler starts with the first request.
func (h *GPUMetrics) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	repl := caddy.NewReplacer()
	workspace := repl.ReplaceAll(h.Workspace, "")
	root := repl.ReplaceAll(h.Root, "")
	if root == "" {
		root = "/"
	}
	rocm := repl.ReplaceAll(h.ROCmSMI, "")
	if rocm == "" {
		rocm = "rocm-smi"
	}
	if workspace != "" && !filepath.IsAbs(workspace) {
		return fmt.Errorf("gpu_metrics: workspace %q: want an absolute path", workspace)
	}
	if !filepath.IsAbs(root) {
		return fmt.Errorf("gpu_metrics: root %q: want an absolute path", root)
	}
	interval, timeout := time.Duration(h.Interval), time.Duration(h.Timeout)
	if interval <= 0 {
		interval = gpumetrics.DefaultInterval
	}
	if timeout <= 0 {
		timeout = gpumetrics.DefaultTimeout
	}
	// The format is not part of the key: JSON and Prometheus handlers with
	// the same settings read the same samples.
	h.poolKey = fmt.Sprintf("interval=%v|timeout=%v|workspace=%s|root=%s|rocm=%s", interval, timeout, workspace, root, rocm)
	logger := h.logger
	val, _, err := gpuCollectors.LoadOrNew(h.poolKey, func() (caddy.Destructor, error) {
		sources := []gpumetrics.GPUSource{nvmlgpu.NewSource(nvmlgpu.Real())}
		if rocm != "off" {
			sources = append(sources, &gpumetrics.ROCmSource{Bin: rocm})
		}
		disks := []gpumetrics.DiskPath{{Label: "root", Path: filepath.Join(root, "/")}}
		if workspace != "" {
			disks = append(disks, gpumetrics.DiskPath{Label: "workspace", Path: filepath.Join(root, workspace)})
		}
		// The collector outlives this config: it owns its context, which
		// Destruct cancels when the last config using it is cleaned up.
		return gpumetrics.NewCollector(gpumetrics.Config{
			Interval: interval,
			Timeout:  timeout,
			GPU:      gpumetrics.FirstAvailable(sources...),
			System:   &gpumetrics.SystemReader{Root: root, Disks: disks, NumCPU: runtime.NumCPU()},
			Logger:   logger.Named("sampler"),
		}), nil
	})
	if err != nil {
		h.poolKey = ""
		return fmt.Errorf("gpu_metrics: %w", err)
	}
	h.collector = val.(*gpumetrics.Collector)
	return nil
}

// Validate checks the settings.
func (h *GPUMetrics) Validate() error {
	switch h.Format {
	case "", "json", "prometheus":
	default:
		return fmt.Errorf("gpu_metrics: format %q: want json or prometheus", h.Format)
	}
	if h.Interval < 0 || h.Timeout < 0 {
		return fmt.Errorf("gpu_metrics: interval and timeout must not be negative")
	}
	if h.Interval > 0 && time.Duration(h.Interval) < 100*time.Millisecond {
		return fmt.Errorf("gpu_metrics: interval %v: want at least 100ms", time.Duration(h.Interval))
	}
	return nil
}

// Cleanup releases this config's hold on the shared collector; the last
// holder's release stops the sampler and shuts NVML down. Safe after a
// failed Provision.
func (h *GPUMetrics) Cleanup() error {
	if h.poolKey == "" {
		return nil
	}
	_, err := gpuCollectors.Delete(h.poolKey)
	h.poolKey = ""
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
	if h.Format == "prometheus" {
		body = s.Prometheus()
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
