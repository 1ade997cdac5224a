package caddymodules

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/instanceportal/portal/confdecl"
	"github.com/instanceportal/portal/gpumetrics"
	"github.com/instanceportal/portal/gpumetrics/nvmlgpu"
	"github.com/instanceportal/portal/internal/testwait"
)

func TestGPUMetricsCaddyfile(t *testing.T) {
	good := map[string]gpumetrics.Config{
		`gpu_metrics`:            {},
		`gpu_metrics prometheus`: {Format: "prometheus"},
		"gpu_metrics json {\n interval 2s\n timeout 500ms\n workspace /workspace\n root /host\n rocm_smi off\n}": {
			Format: "json", Interval: confdecl.Duration(2 * time.Second), Timeout: confdecl.Duration(500 * time.Millisecond),
			Workspace: "/workspace", Root: "/host", ROCmSMI: "off",
		},
		"gpu_metrics {\n format prometheus\n workspace {env.WORKSPACE}\n}": {Format: "prometheus", Workspace: "{env.WORKSPACE}"},
	}
	for in, want := range good {
		var got GPUMetrics
		if parseCaddyfile(t, &got, in); got.Config != want {
			t.Errorf("%q: got %+v want %+v", in, got.Config, want)
		}
	}
	bad := map[string]string{
		`gpu_metrics xml`:                            `gpu_metrics: format: "xml": want json, prometheus`,
		`gpu_metrics json extra`:                     "wrong argument count",
		"gpu_metrics {\n interval\n}":                "wrong argument count",
		"gpu_metrics {\n interval 1s 2s\n}":          "wrong argument count",
		"gpu_metrics {\n interval soon\n}":           `gpu_metrics: interval "soon": want a duration`,
		"gpu_metrics {\n interval 10ms\n}":           "gpu_metrics: interval: must be at least 100ms, got 10ms",
		"gpu_metrics {\n timeout -1s\n}":             `gpu_metrics: timeout "-1s": want a duration`,
		"gpu_metrics {\n workspace relative\n}":      `gpu_metrics: workspace: "relative": want an absolute path`,
		"gpu_metrics {\n colour blue\n}":             `gpu_metrics: unrecognized option "colour"`,
		"gpu_metrics {\n root /a\n root /b\n}":       `gpu_metrics: duplicate option "root"`,
		"gpu_metrics {\n workspace /a {\n}\n}":       `gpu_metrics: option "workspace" takes no block`,
		"gpu_metrics {\n workspace /a {\n  x\n }\n}": `gpu_metrics: option "workspace" takes no block`,
	}
	for in, want := range bad {
		refuseCaddyfile(t, new(GPUMetrics), in, want)
	}
}

func TestGPUMetricsProvisionChecksSettings(t *testing.T) {
	ctx := caddyContext(t)
	cases := []struct {
		cfg  gpumetrics.Config
		want string
	}{
		{gpumetrics.Config{Format: "yaml"}, `gpu_metrics: format: "yaml": want json, prometheus`},
		{gpumetrics.Config{Interval: -1}, "gpu_metrics: interval: must not be negative, got -1ns"},
		{gpumetrics.Config{Interval: confdecl.Duration(time.Millisecond)}, "gpu_metrics: interval: must be at least 100ms, got 1ms"},
		{gpumetrics.Config{Timeout: -confdecl.Duration(time.Second)}, "gpu_metrics: timeout: must not be negative, got -1s"},
		{gpumetrics.Config{Workspace: "relative/dir"}, `gpu_metrics: workspace: "relative/dir": want an absolute path`},
		{gpumetrics.Config{Root: "host"}, `gpu_metrics: root: "host": want an absolute path`},
	}
	for _, c := range cases {
		h := &GPUMetrics{Config: c.cfg}
		if err := h.Provision(ctx); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: Provision = %v, want %q", c.cfg, err, c.want)
		}
		if err := h.Cleanup(); err != nil {
			t.Errorf("cleanup after failed provision: %v", err)
		}
	}
}

// TestGPUMetricsWithoutGPU runs the real sources on this machine (no NVIDIA
// driver, no rocm-smi): 200, available false with the reason, and system
// figures from this container.
func TestGPUMetricsWithoutGPU(t *testing.T) {
	if nvmlgpu.Real().Init() == nil {
		t.Skip("this machine has an NVIDIA driver")
	}
	ws := t.TempDir()
	js := provision(t, &GPUMetrics{Config: gpumetrics.Config{Format: "json", Workspace: ws, ROCmSMI: "rocm-smi-not-installed"}})
	prom := provision(t, &GPUMetrics{Config: gpumetrics.Config{Format: "prometheus", Workspace: ws, ROCmSMI: "rocm-smi-not-installed"}})
	if js.collector != prom.collector {
		t.Fatal("json and prometheus handlers with the same settings must share one collector")
	}

	rec := httptest.NewRecorder()
	if err := js.ServeHTTP(rec, httptest.NewRequest("GET", "/api/metrics", nil), nextNotCalled); err != nil {
		t.Fatal(err)
	}
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("status %d headers %v", rec.Code, rec.Header())
	}
	// The document's field names are gpumetrics' golden tests' to check;
	// here, that the handler serves a real sample.
	var doc gpumetrics.Snapshot
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	if doc.Available || doc.GPUs == nil || len(doc.GPUs) != 0 || !strings.Contains(rec.Body.String(), `"available":false`) {
		t.Errorf("want available:false and gpus:[], got %s", rec.Body)
	}
	wantReason := "NVML library not found"
	if !nvmlgpu.Supported {
		wantReason = "built without cgo"
	}
	if !strings.Contains(doc.Reason, wantReason) || !strings.Contains(doc.Reason, "rocm-smi-not-installed not found on PATH") {
		t.Errorf("reason %q", doc.Reason)
	}
	if doc.SampledAt.IsZero() || time.Since(doc.SampledAt) > time.Minute {
		t.Errorf("sampled_at %v", doc.SampledAt)
	}
	if doc.System.MemoryUsedBytes == nil || doc.System.MemoryLimitBytes == nil || *doc.System.MemoryLimitBytes == 0 || doc.System.CPULimitCores == nil {
		t.Errorf("system figures missing: %s", rec.Body)
	}
	if len(doc.System.Disks) == 0 || doc.System.Disks[0].Label != "root" || doc.System.Disks[0].TotalBytes == 0 {
		t.Errorf("disks: %s", rec.Body)
	}

	rec = httptest.NewRecorder()
	if err := prom.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil), nextNotCalled); err != nil {
		t.Fatal(err)
	}
	body := rec.Body.String()
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("status %d content type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	for _, want := range []string{`portal_gpu_available{backend="",reason="`, "portal_memory_used_bytes{source=", `portal_disk_total_bytes{label="root",path="/"}`} {
		if !strings.Contains(body, want) {
			t.Errorf("prometheus output lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "DCGM_FI_") {
		t.Errorf("no GPU, yet DCGM series:\n%s", body)
	}

	rec = httptest.NewRecorder()
	err := js.ServeHTTP(rec, httptest.NewRequest("POST", "/api/metrics", nil), nextNotCalled)
	if he, ok := err.(caddyhttp.HandlerError); !ok || he.StatusCode != 405 || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %v %v", err, rec.Header())
	}
}

// TestGPUMetricsPoolSurvivesReload: a new config provisions before the old
// one is cleaned up, so the collector (and NVML) carries over; it is torn
// down only when the last holder goes.
func TestGPUMetricsPoolSurvivesReload(t *testing.T) {
	ctx := caddyContext(t)
	old := &GPUMetrics{Config: gpumetrics.Config{Interval: confdecl.Duration(333 * time.Millisecond), ROCmSMI: "off"}}
	if err := old.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	key := old.pooled.key
	c := old.collector
	c.Latest(context.Background()) // sampler running
	next := &GPUMetrics{Config: gpumetrics.Config{Interval: confdecl.Duration(333 * time.Millisecond), ROCmSMI: "off"}}
	if err := next.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if next.collector != c {
		t.Fatal("reload with unchanged settings must keep the collector")
	}
	if err := old.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if refs, ok := gpuCollectors.references(key); !ok || refs != 1 {
		t.Fatalf("after old cleanup: refs=%d ok=%v", refs, ok)
	}
	before := c.Sweeps()
	// The sampler must still run: wait (bounded) for its next sweep.
	testwait.Poll(10*time.Second, 0, func() bool { return c.Sweeps() > before })
	if c.Sweeps() <= before {
		t.Errorf("sampler stopped by the old config's cleanup")
	}
	if err := next.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if _, ok := gpuCollectors.references(key); ok {
		t.Error("collector still pooled after the last cleanup")
	}
}

// BenchmarkGPUMetricsServeCached measures the handler serving a cached
// sample (the common case: every request after the first in an interval).
func BenchmarkGPUMetricsServeCached(b *testing.B) {
	for _, format := range []string{"json", "prometheus"} {
		b.Run(format, func(b *testing.B) {
			h := provision(b, &GPUMetrics{Config: gpumetrics.Config{Format: format, Interval: confdecl.Duration(time.Hour), ROCmSMI: "off"}})
			req := httptest.NewRequest("GET", "/api/metrics", nil)
			w := &discardWriter{h: http.Header{}}
			if err := h.ServeHTTP(w, req, nextNotCalled); err != nil { // first sample and render
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				clear(w.h)
				if err := h.ServeHTTP(w, req, nextNotCalled); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark
// measures the handler, not a recorder's buffer.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

// panickySource is a GPU source whose sweeps panic once told to, which the
// sampler recovers from and logs.
type panickySource struct{ panicking *atomic.Bool }

func (p panickySource) Sweep(context.Context) gpumetrics.GPUReport {
	if p.panicking.Load() {
		panic("driver fell over")
	}
	return gpumetrics.GPUReport{Reason: "stand-in", GPUs: []gpumetrics.GPU{}}
}
func (panickySource) Close() error { return nil }

// TestGPUCollectorLogsThroughNewestConfig: the pooled collector outlives
// the config that created it; after a reload closed that config's log
// sink, the sampler's errors go to the new config's log. On the old code
// the collector kept the first config's logger.
func TestGPUCollectorLogsThroughNewestConfig(t *testing.T) {
	var panicking atomic.Bool
	saved := gpuSources
	gpuSources = func(gpumetrics.Config) gpumetrics.GPUSource { return panickySource{&panicking} }
	t.Cleanup(func() { gpuSources = saved })

	port := testwait.FreePort(t)
	apps := map[string]any{"http": map[string]any{"servers": map[string]any{"metrics": map[string]any{
		"listen": []string{fmt.Sprintf("127.0.0.1:%d", port)},
		"routes": []any{map[string]any{"handle": []any{map[string]any{
			"handler": "gpu_metrics", "interval": "100ms", "rocm_smi": "off", "root": "/",
		}}}},
	}}}}
	oldSink, newSink := reloadClosingOldSink(t, []string{"http.handlers.gpu_metrics"}, apps)
	if got := roundTrip(t, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/", port), ""); got.status != 200 || !strings.Contains(got.body, "stand-in") {
		t.Fatalf("metrics: %d %s", got.status, got.body)
	}
	panicking.Store(true)
	waitLogged(t, newSink, "gpu sweep panicked", oldSink)
	if !strings.Contains(newSink.String(), `"logger":"http.handlers.gpu_metrics.sampler"`) {
		t.Errorf("entry lost its logger name: %s", newSink)
	}
	if n := oldSink.late(); n != 0 {
		t.Errorf("%d writes to the old config's closed sink", n)
	}
}
