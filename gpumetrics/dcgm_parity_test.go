package gpumetrics_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/instanceportal/portal/gpumetrics"
	"github.com/instanceportal/portal/gpumetrics/nvmlgpu"
	"github.com/instanceportal/portal/gpumetrics/nvmlgpu/nvmlfake"
	"github.com/instanceportal/portal/gpumetrics/promcheck"
)

// dcgmTemplateLabels are the labels dcgm-exporter 3.3.5-3.4.0 puts on every
// GPU series (testdata/dcgm-exporter/README.md); the CSV's "label" rows
// add theirs.
var dcgmTemplateLabels = []string{"gpu", "UUID", "device", "modelName", "Hostname"}

type dcgmCounter struct{ name, kind, help string }

// dcgmDefaultCounters reads dcgm-exporter's default-counters.csv.
func dcgmDefaultCounters(t *testing.T) (counters []dcgmCounter, labels []string) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "dcgm-exporter", "default-counters.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.Comment, r.FieldsPerRecord, r.LazyQuotes = '#', -1, true
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		if len(row) < 3 {
			t.Fatalf("default-counters.csv row %q: want 3 fields", row)
		}
		c := dcgmCounter{strings.TrimSpace(row[0]), strings.TrimSpace(row[1]), strings.TrimSpace(strings.Join(row[2:], ","))}
		if c.kind == "label" {
			labels = append(labels, c.name)
			continue
		}
		counters = append(counters, c)
	}
	return counters, labels
}

// parityMachine is every kind of board the fake knows: an H100 with every
// field, a consumer RTX 4090 without NVLink, memory sensor, row remapping
// or GPM, and a licensed vGPU guest.
func parityMachine() *nvmlfake.API {
	return &nvmlfake.API{
		Devices: []*nvmlfake.Device{nvmlfake.H100(0), nvmlfake.RTX4090(1), nvmlfake.VGPU(2)},
		Driver:  "550.54.15", CUDA: 12040, ProcNames: map[uint32]string{4242: "python3"},
	}
}

// paritySnapshot sweeps twice (the tensor-activity rate needs two samples).
func paritySnapshot(t *testing.T) *gpumetrics.Snapshot {
	t.Helper()
	src := nvmlgpu.NewSource(parityMachine())
	src.Sweep(context.Background())
	rep := src.Sweep(context.Background())
	if !rep.Available || len(rep.GPUs) != 3 {
		t.Fatalf("fake sweep: %+v", rep)
	}
	return &gpumetrics.Snapshot{SampledAt: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC), Hostname: "instance-1", GPUReport: rep, System: fixedSystem{}.Read()}
}

// TestDCGMDefaultCounters holds our /metrics to dcgm-exporter's default
// counters: every one is exported with its type, its help text and its
// labels; a board that lacks a figure exports no series for it.
func TestDCGMDefaultCounters(t *testing.T) {
	counters, csvLabels := dcgmDefaultCounters(t)
	if len(counters) != 21 {
		t.Fatalf("default-counters.csv lists %d counters, want the 21 of dcgm-exporter 3.3.5-3.4.0", len(counters))
	}
	snap := paritySnapshot(t)
	prom := gpumetrics.RenderPrometheus(snap)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(bytes.NewReader(prom))
	if err != nil {
		t.Fatalf("our output does not parse: %v\n%s", err, prom)
	}
	wantLabels := append(slices.Clone(dcgmTemplateLabels), csvLabels...)
	for _, c := range counters {
		mf := mfs[c.name]
		if mf == nil {
			t.Errorf("%s: not exported", c.name)
			continue
		}
		if got := strings.ToLower(mf.GetType().String()); got != c.kind {
			t.Errorf("%s: type %s, dcgm-exporter says %s", c.name, got, c.kind)
		}
		if mf.GetHelp() != c.help {
			t.Errorf("%s: help %q, dcgm-exporter says %q", c.name, mf.GetHelp(), c.help)
		}
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for _, l := range wantLabels {
				if have[l] == "" {
					t.Errorf("%s: series %v lacks label %s", c.name, have, l)
				}
			}
		}
	}

	// Absent, not zero: the RTX 4090 (gpu="1") has no NVLink, memory
	// sensor, row remapping or vGPU; only the vGPU guest (gpu="2") has
	// a licence status.
	perGPU := func(name string) []string {
		var gpus []string
		for _, m := range mfs[name].GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "gpu" {
					gpus = append(gpus, lp.GetValue())
				}
			}
		}
		slices.Sort(gpus)
		return gpus
	}
	for name, want := range map[string][]string{
		"DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL":      {"0", "2"},
		"DCGM_FI_DEV_MEMORY_TEMP":                 {"0", "2"},
		"DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS":   {"0", "2"},
		"DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": {"0", "2"},
		"DCGM_FI_DEV_ROW_REMAP_FAILURE":           {"0", "2"},
		"DCGM_FI_DEV_VGPU_LICENSE_STATUS":         {"2"},
		"DCGM_FI_PROF_PIPE_TENSOR_ACTIVE":         {"0", "2"},
		"DCGM_FI_DEV_PCIE_TX_THROUGHPUT":          {"0", "1", "2"},
		"DCGM_FI_DEV_ENC_UTIL":                    {"0", "1", "2"},
	} {
		if got := perGPU(name); !slices.Equal(got, want) {
			t.Errorf("%s: series for gpus %v, want %v", name, got, want)
		}
	}
	promtoolCheck(t, prom)
}

// promtoolCheck runs `promtool check metrics` (Debian's prometheus
// package; scripts/install-test-deps.sh installs it) over an exposition.
// A parse error fails. Lint findings (exit 3) are allowed only where
// dcgm-exporter's contract dictates the name: any finding on a DCGM_*
// family, and camelCase label names (dcgm-exporter's UUID, modelName,
// Hostname) on our own per-GPU families. Any other finding fails.
func promtoolCheck(t *testing.T, prom []byte) {
	t.Helper()
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Skip("promtool not on PATH: run scripts/install-test-deps.sh (Debian package prometheus)")
	}
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = bytes.NewReader(prom)
	out, err := cmd.CombinedOutput()
	if err == nil {
		return
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("promtool check metrics: %v\n%s\n--- input\n%s", err, out, prom)
	}
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSpace(line)
		switch {
		case line == "", strings.HasPrefix(line, "DCGM_"):
		case strings.HasPrefix(line, "portal_gpu_") && strings.HasSuffix(line, "label names should be written in 'snake_case' not 'camelCase'"):
		default:
			t.Errorf("promtool check metrics: %s", line)
		}
	}
}

// TestDCGMDashboardFindsSeries checks every query of NVIDIA's published
// dcgm-exporter Grafana dashboard against our output for the fake boards,
// with the labels a scrape adds.
func TestDCGMDashboardFindsSeries(t *testing.T) {
	prom := gpumetrics.RenderPrometheus(paritySnapshot(t))
	dashboardFindsSeries(t, filepath.Join("testdata", "dcgm-exporter", "dcgm-exporter-dashboard.json"), 10,
		prom, map[string]string{"instance": "1.2.3.4:1111", "job": "portal"})
}

// dashboardFindsSeries checks that the Grafana dashboard at path holds at
// least min queries and that each finds a series in the exposition prom,
// scraped with the labels target.
func dashboardFindsSeries(t *testing.T, path string, min int, prom []byte, target map[string]string) {
	t.Helper()
	dash, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	series, err := promcheck.ParseExposition(bytes.NewReader(prom), target)
	if err != nil {
		t.Fatal(err)
	}
	missing, n, err := promcheck.Missing(dash, series)
	if err != nil {
		t.Fatal(err)
	}
	if n < min {
		t.Fatalf("only %d queries found in %s", n, path)
	}
	for _, m := range missing {
		t.Errorf("%s: a query finds no series: %s", path, m)
	}
}

// TestPromtoolGolden runs promtool over every golden exposition.
func TestPromtoolGolden(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "golden", "*.prom"))
	if len(files) == 0 {
		t.Fatal("no golden .prom files")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(filepath.Base(f), func(t *testing.T) { promtoolCheck(t, b) })
	}
}

// TestFleetDashboardFindsSeries checks every query of our fleet dashboard
// (docs/grafana-fleet-dashboard.json) against our /metrics for the fake
// boards plus the portal's own states, with the labels the file_sd entry
// of `caddy portal prometheus-target` and the scrape add (and the up
// series Prometheus makes).
func TestFleetDashboardFindsSeries(t *testing.T) {
	prom := gpumetrics.RenderPrometheus(paritySnapshot(t))
	prom = append(prom, gpumetrics.RenderExtras(&gpumetrics.Extras{
		Apps:    map[string]string{"Jupyter": "running", "ComfyUI": "starting"},
		Tunnels: []gpumetrics.TunnelState{{Type: "quick", Target: "http://localhost:8080", State: "running"}},
		Idle:    &gpumetrics.IdleState{IdleSeconds: 720, StopAfterSeconds: 1800},
	})...)
	promtoolCheck(t, prom)
	prom = append(prom, "# TYPE up gauge\nup 1\n"...)
	target := map[string]string{"instance": "203.0.113.5:41111", "job": "instance-portal", "instance_id": "77",
		"container_label": "C.77", "host": "h1", "gpu_model": "NVIDIA H100 80GB HBM3"}
	dashboardFindsSeries(t, filepath.Join("..", "docs", "grafana-fleet-dashboard.json"), 12, prom, target)
}
