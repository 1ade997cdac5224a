package gpumetrics_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/instanceportal/portal/gpumetrics"
	"github.com/instanceportal/portal/gpumetrics/nvmlgpu"
	"github.com/instanceportal/portal/gpumetrics/nvmlgpu/nvmlfake"
)

var update = flag.Bool("update", false, "rewrite golden files")

type fixedSystem struct{}

func (fixedSystem) Read() gpumetrics.System {
	return gpumetrics.System{
		CPUPercent: gpumetrics.Ptr(37.5), CPULimitCores: gpumetrics.Ptr(8.0), CPUSource: "cgroup2",
		MemoryUsedBytes: gpumetrics.Ptr[uint64](12 << 30), MemoryLimitBytes: gpumetrics.Ptr[uint64](64 << 30), MemorySource: "cgroup2",
		Disks: []gpumetrics.Disk{
			{Label: "root", Path: "/", TotalBytes: 100 << 30, UsedBytes: 40 << 30, AvailableBytes: 55 << 30, UsableBytes: 95 << 30, UsedPercent: 43},
			{Label: "workspace", Path: "/workspace", TotalBytes: 1 << 40, UsedBytes: 1 << 38, AvailableBytes: 3 << 38, UsableBytes: 1 << 40, UsedPercent: 25},
		},
	}
}

// fakeMachine is two H100s: the second lacks ECC and XID events, cannot
// list processes, and fails its power reading with a permission error.
func fakeMachine() *nvmlfake.API {
	a, b := nvmlfake.H100(0), nvmlfake.H100(1)
	b.Errs = map[string]error{
		"ecc": nvmlfake.NotSupported, "xid": nvmlfake.NotSupported, "processes": nvmlfake.NotSupported,
		"power_draw": nvmlfake.NoPermission, "fan_speed": nvmlfake.NotSupported,
	}
	b.GPUUtil, b.Reasons = 0, 0x1|0x40
	return &nvmlfake.API{
		Devices: []*nvmlfake.Device{a, b}, Driver: "550.54.15", CUDA: 12040,
		ProcNames: map[uint32]string{4242: "python3"},
		XIDs:      nil,
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run with -update after checking):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func sample(t *testing.T, api nvmlgpu.API) *gpumetrics.Sample {
	t.Helper()
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	c := gpumetrics.NewCollector(gpumetrics.Config{}, gpumetrics.Sources{
		GPU: nvmlgpu.NewSource(api), System: fixedSystem{}, Hostname: "instance-1",
		Now: func() time.Time { return at },
	}, nil)
	t.Cleanup(func() { _ = c.Close() })
	return c.Latest(context.Background())
}

func TestGoldenFakeGPUs(t *testing.T) {
	s := sample(t, fakeMachine())
	golden(t, "two-gpus.json", s.JSON())
	golden(t, "two-gpus.prom", s.Prometheus())
}

// TestGoldenParity is every board kind of the fake (H100, RTX 4090 without
// NVLink and friends, vGPU guest), after two sweeps.
func TestGoldenParity(t *testing.T) {
	snap := paritySnapshot(t)
	golden(t, "parity.json", gpumetrics.RenderJSON(snap))
	golden(t, "parity.prom", gpumetrics.RenderPrometheus(snap))
}

func TestGoldenNoDriver(t *testing.T) {
	s := sample(t, &nvmlfake.API{InitErr: nvmlfake.LibraryNotFound})
	golden(t, "no-driver.json", s.JSON())
	golden(t, "no-driver.prom", s.Prometheus())
}

// BenchmarkSweepFake is one NVML sweep of 8 fake boards: the cost of our
// own code around NVML (field reads, allocation of the report).
func BenchmarkSweepFake(b *testing.B) {
	api := &nvmlfake.API{Driver: "550.54.15", CUDA: 12040}
	for i := range 8 {
		api.Devices = append(api.Devices, nvmlfake.H100(i))
	}
	src := nvmlgpu.NewSource(api)
	src.Sweep(context.Background())
	b.ReportAllocs()
	for b.Loop() {
		src.Sweep(context.Background())
	}
}

// BenchmarkRender is the once-per-sample encoding of 8 GPUs.
func BenchmarkRender(b *testing.B) {
	api := &nvmlfake.API{Driver: "550.54.15", CUDA: 12040}
	for i := range 8 {
		api.Devices = append(api.Devices, nvmlfake.H100(i))
	}
	rep := nvmlgpu.NewSource(api).Sweep(context.Background())
	snap := &gpumetrics.Snapshot{GPUReport: rep, System: fixedSystem{}.Read()}
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			gpumetrics.RenderJSON(snap)
		}
	})
	b.Run("prometheus", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			gpumetrics.RenderPrometheus(snap)
		}
	})
}
