package integration_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestGPUMetricsWithoutGPU: on this GPU-less machine the portal answers
// /api/metrics and /metrics with 200, "available": false and the reason,
// plus the system figures, before and after a reload.
func TestGPUMetricsWithoutGPU(t *testing.T) {
	internal := freePort(t)
	ws := t.TempDir()
	p := StartPortal(t, portalYAML(appYAML("Instance Portal", freePort(t), internal, "/")), PortalOptions{
		Env: map[string]string{"WORKSPACE": ws},
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", internal)
	waitStatus(t, nil, base+"/api/metrics", 200)

	api := &apiClient{t: t, base: base}
	check := func(when string) {
		r := api.do("GET", "/api/metrics", "", nil)
		body := r.Body
		if r.Code != 200 || r.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: /api/metrics %d %q: %s", when, r.Code, r.Header.Get("Content-Type"), body)
		}
		var doc struct {
			SampledAt time.Time `json:"sampled_at"`
			Available *bool     `json:"available"`
			Reason    string    `json:"reason"`
			GPUs      []any     `json:"gpus"`
			System    struct {
				MemoryUsedBytes  *uint64 `json:"memory_used_bytes"`
				MemoryLimitBytes *uint64 `json:"memory_limit_bytes"`
				Disks            []struct {
					Label string `json:"label"`
				} `json:"disks"`
			} `json:"system"`
		}
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			t.Fatalf("%s: %v: %s", when, err, body)
		}
		if doc.Available == nil || *doc.Available || doc.GPUs == nil {
			t.Fatalf("%s: want available:false, gpus:[]: %s", when, body)
		}
		if !strings.Contains(doc.Reason, "NVML library not found") && !strings.Contains(doc.Reason, "built without cgo") {
			t.Errorf("%s: reason %q", when, doc.Reason)
		}
		if doc.SampledAt.IsZero() || doc.System.MemoryUsedBytes == nil || doc.System.MemoryLimitBytes == nil || len(doc.System.Disks) == 0 {
			t.Errorf("%s: system figures missing: %s", when, body)
		}

		r = api.do("GET", "/metrics", "", nil)
		if r.Code != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
			t.Fatalf("%s: /metrics %d %q", when, r.Code, r.Header.Get("Content-Type"))
		}
		if !strings.Contains(r.Body, `portal_gpu_available{backend="",reason="no_`) || !strings.Contains(r.Body, "portal_memory_used_bytes{") || strings.Contains(r.Body, "DCGM_FI_") {
			t.Errorf("%s: /metrics:\n%s", when, r.Body)
		}
	}
	check("start")

	cfg := p.AdminConfig()
	if !strings.Contains(cfg, `"handler":"gpu_metrics"`) || !strings.Contains(cfg, `"format":"prometheus"`) {
		t.Errorf("admin config lacks the gpu_metrics handlers")
	}
	if out, err := p.Reload("--force"); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	check("after reload")
	if strings.Contains(p.Logs(), "panic") {
		t.Errorf("panic in logs:\n%s", p.Logs())
	}
}
