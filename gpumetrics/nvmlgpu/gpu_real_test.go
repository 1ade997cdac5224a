//go:build nvmlgpu && linux && cgo

package nvmlgpu

// The real-GPU check. Build with -tags nvmlgpu; it skips without
// nvidia-smi, and otherwise compares what NVML reports through Source with
// what nvidia-smi prints. See .device-check/gpu.sh.

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/instanceportal/portal/gpumetrics"
)

type smiGPU struct {
	index  int
	name   string
	memMiB uint64
	uuid   string
	busID  string
}

func nvidiaSmi(t testing.TB) []smiGPU {
	t.Helper()
	if _, err := exec.LookPath("nvidia-smi"); err != nil {
		t.Skip("nvidia-smi not on PATH: no NVIDIA GPU here")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nvidia-smi", "--query-gpu=index,name,memory.total,uuid,pci.bus_id", "--format=csv,noheader,nounits").Output()
	if err != nil {
		t.Fatalf("nvidia-smi: %v", err)
	}
	var gpus []smiGPU
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, ",")
		if len(f) != 5 {
			t.Fatalf("nvidia-smi line %q: want 5 fields", line)
		}
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		idx, err1 := strconv.Atoi(f[0])
		mem, err2 := strconv.ParseUint(f[2], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("nvidia-smi line %q: bad index or memory", line)
		}
		gpus = append(gpus, smiGPU{idx, f[1], mem, f[3], f[4]})
	}
	return gpus
}

func TestGPUMatchesNvidiaSmi(t *testing.T) {
	want := nvidiaSmi(t)
	src := NewSource(Real())
	defer src.Close()

	t0 := time.Now()
	first := src.Sweep(context.Background()) // includes NVML init
	initSweep := time.Since(t0)
	t1 := time.Now()
	rep := src.Sweep(context.Background())
	oneSweep := time.Since(t1)
	t.Logf("first sweep (with NVML init): %v; one sweep: %v; GPUs: %d", initSweep, oneSweep, len(rep.GPUs))
	if !first.Available || !rep.Available {
		t.Fatalf("NVML unavailable on a machine with nvidia-smi: %q", rep.Reason)
	}
	if len(rep.GPUs) != len(want) {
		t.Fatalf("NVML sees %d GPUs, nvidia-smi %d", len(rep.GPUs), len(want))
	}
	for i, w := range want {
		g := rep.GPUs[i]
		if g.Index != w.index || g.Name != w.name || g.UUID != w.uuid {
			t.Errorf("GPU %d: NVML index=%d name=%q uuid=%q, nvidia-smi index=%d name=%q uuid=%q", i, g.Index, g.Name, g.UUID, w.index, w.name, w.uuid)
		}
		if g.MemoryTotalBytes == nil {
			t.Errorf("GPU %d: no memory total", i)
			continue
		}
		gotMiB := *g.MemoryTotalBytes >> 20
		// nvidia-smi and NVML's v1 memory query can differ by the reserved
		// framebuffer on recent drivers; allow 1%.
		diff := max(gotMiB, w.memMiB) - min(gotMiB, w.memMiB)
		if diff*100 > w.memMiB {
			t.Errorf("GPU %d: memory total NVML %d MiB, nvidia-smi %d MiB", i, gotMiB, w.memMiB)
		}
		if !strings.EqualFold(strings.TrimLeft(g.PCIBusID, "0"), strings.TrimLeft(w.busID, "0")) {
			t.Errorf("GPU %d: bus id NVML %q, nvidia-smi %q", i, g.PCIBusID, w.busID)
		}
		t.Logf("GPU %d: %s %s mem=%d MiB (nvidia-smi %d MiB) driver=%s cuda=%s", g.Index, g.Name, g.UUID, gotMiB, w.memMiB, rep.DriverVersion, rep.CUDAVersion)
	}
	time.Sleep(200 * time.Millisecond) // the tensor-activity rate compares two GPM samples
	rep = src.Sweep(context.Background())
	for _, g := range rep.GPUs {
		logParityFields(t, g)
	}
	snap := &gpumetrics.Snapshot{SampledAt: time.Now().UTC(), GPUReport: rep, System: gpumetrics.System{Disks: []gpumetrics.Disk{}}}
	t.Logf("JSON:\n%s", gpumetrics.RenderJSON(snap))
	prom := gpumetrics.RenderPrometheus(snap)
	if !bytes.Contains(prom, []byte("DCGM_FI_DEV_FB_USED{")) {
		t.Errorf("Prometheus output lacks DCGM_FI_DEV_FB_USED:\n%s", prom)
	}
	for _, g := range rep.GPUs {
		checkParitySeries(t, g, prom)
	}
	t.Logf("Prometheus:\n%s", prom)
}

// parityFields are the figures added for dcgm-exporter parity (issue 23),
// each with its series and its value (nil: absent on this board).
func parityFields(g gpumetrics.GPU) []struct {
	metric string
	value  any
} {
	opt := func(p any) any {
		switch v := p.(type) {
		case *float64:
			if v != nil {
				return *v
			}
		case *uint64:
			if v != nil {
				return *v
			}
		case *bool:
			if v != nil {
				return *v
			}
		}
		return nil
	}
	return []struct {
		metric string
		value  any
	}{
		{"DCGM_FI_DEV_MEMORY_TEMP", opt(g.MemoryTemperatureC)},
		{"DCGM_FI_DEV_PCIE_TX_THROUGHPUT", opt(g.PCIeTxKB)},
		{"DCGM_FI_DEV_PCIE_RX_THROUGHPUT", opt(g.PCIeRxKB)},
		{"DCGM_FI_DEV_PCIE_REPLAY_COUNTER", opt(g.PCIeReplays)},
		{"DCGM_FI_DEV_ENC_UTIL", opt(g.EncoderUtilizationPercent)},
		{"DCGM_FI_DEV_DEC_UTIL", opt(g.DecoderUtilizationPercent)},
		{"DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", opt(g.NVLinkBandwidthKiB)},
		{"DCGM_FI_DEV_VGPU_LICENSE_STATUS", opt(g.VGPULicenseStatus)},
		{"DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", opt(g.RemappedRowsCorrectable)},
		{"DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", opt(g.RemappedRowsUncorrectable)},
		{"DCGM_FI_DEV_ROW_REMAP_FAILURE", opt(g.RowRemapFailure)},
		{"DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", opt(g.TensorActiveRatio)},
	}
}

// logParityFields prints every new figure's value from the real NVML, or
// why it is absent.
func logParityFields(t *testing.T, g gpumetrics.GPU) {
	t.Helper()
	for _, f := range parityFields(g) {
		if f.value == nil {
			t.Logf("GPU %d %s: absent (not supported on this board)", g.Index, f.metric)
		} else {
			t.Logf("GPU %d %s = %v", g.Index, f.metric, f.value)
		}
	}
	if len(g.FieldErrors) > 0 {
		t.Logf("GPU %d field errors: %v", g.Index, g.FieldErrors)
	}
}

// checkParitySeries checks that an exposition carries a series for every
// figure the board has, and none for a figure it lacks.
func checkParitySeries(t *testing.T, g gpumetrics.GPU, prom []byte) {
	t.Helper()
	for _, f := range parityFields(g) {
		has := bytes.Contains(prom, []byte(f.metric+"{gpu=\""+strconv.Itoa(g.Index)+"\""))
		if has != (f.value != nil) {
			t.Errorf("GPU %d %s: value %v but series present=%v", g.Index, f.metric, f.value, has)
		}
	}
}

// TestGPUMetricsEndpoint reads a running portal's /metrics (the real binary
// started by .device/gpu.sh, URL in GPU_CHECK_METRICS_URL) and checks it
// carries every new figure NVML has on this machine.
func TestGPUMetricsEndpoint(t *testing.T) {
	url := os.Getenv("GPU_CHECK_METRICS_URL")
	if url == "" {
		t.Skip("GPU_CHECK_METRICS_URL not set: no running portal to read")
	}
	nvidiaSmi(t)
	src := NewSource(Real())
	defer src.Close()
	src.Sweep(context.Background())
	time.Sleep(200 * time.Millisecond) // the tensor-activity rate compares two GPM samples taken apart in time
	rep := src.Sweep(context.Background())
	var prom []byte
	for range 20 { // the portal's first sample may lack the two-sample rate
		resp, err := http.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		prom, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
		}
		if bytes.Contains(prom, []byte("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{")) || rep.GPUs[0].TensorActiveRatio == nil {
			break
		}
		time.Sleep(250 * time.Millisecond) // bounded (20 tries): the portal's next sweep, a real driver's pace
	}
	t.Logf("/metrics:\n%s", prom)
	for _, g := range rep.GPUs {
		checkParitySeries(t, g, prom)
	}
	if !bytes.Contains(prom, []byte(`portal_gpu_available{backend="nvml",reason=""} 1`)) {
		t.Errorf("/metrics does not report the GPU available")
	}
}

// BenchmarkGPUSweep times one NVML sweep of every GPU (init excluded).
func BenchmarkGPUSweep(b *testing.B) {
	nvidiaSmi(b)
	src := NewSource(Real())
	defer src.Close()
	if rep := src.Sweep(context.Background()); !rep.Available {
		b.Fatalf("NVML unavailable: %s", rep.Reason)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		src.Sweep(context.Background())
	}
}

// BenchmarkGPUNvidiaSmi times what the reference does per poll: one
// nvidia-smi subprocess (GPUtil runs a similar --query-gpu).
func BenchmarkGPUNvidiaSmi(b *testing.B) {
	nvidiaSmi(b)
	for b.Loop() {
		out, err := exec.Command("nvidia-smi", "--query-gpu=index,uuid,utilization.gpu,memory.total,memory.used,memory.free,driver_version,name,gpu_serial,display_active,display_mode,temperature.gpu", "--format=csv,noheader,nounits").Output()
		if err != nil || len(out) == 0 {
			b.Fatalf("nvidia-smi: %v", err)
		}
	}
}

// BenchmarkGPUField times each NVML call of a sweep on GPU 0, to show
// where a sweep's time goes.
func BenchmarkGPUField(b *testing.B) {
	nvidiaSmi(b)
	api := Real()
	if err := api.Init(); err != nil {
		b.Fatal(err)
	}
	defer api.Shutdown()
	d, err := api.Device(0)
	if err != nil {
		b.Fatal(err)
	}
	_ = api.RegisterXID(d)
	calls := []struct {
		name string
		fn   func() error
	}{
		{"DeviceCount", func() error { _, err := api.DeviceCount(); return err }},
		{"PollXID", func() error { _, _ = api.PollXID(); return nil }},
		{"Name", func() error { _, err := d.Name(); return err }},
		{"UUID", func() error { _, err := d.UUID(); return err }},
		{"PCIBusID", func() error { _, err := d.PCIBusID(); return err }},
		{"Utilization", func() error { _, _, err := d.Utilization(); return err }},
		{"Memory", func() error { _, _, _, err := d.Memory(); return err }},
		{"Temperature", func() error { _, err := d.TemperatureC(); return err }},
		{"PowerUsage", func() error { _, err := d.PowerUsageMilliwatts(); return err }},
		{"PowerLimit", func() error { _, err := d.PowerLimitMilliwatts(); return err }},
		{"FanSpeed", func() error { _, err := d.FanSpeedPercent(); return err }},
		{"SMClock", func() error { _, err := d.SMClockMHz(); return err }},
		{"MemClock", func() error { _, err := d.MemoryClockMHz(); return err }},
		{"PCIeGen", func() error { _, err := d.PCIeLinkGen(); return err }},
		{"PCIeWidth", func() error { _, err := d.PCIeLinkWidth(); return err }},
		{"ClockEvents", func() error { _, err := d.ClockEventReasons(); return err }},
		{"Energy", func() error { _, err := d.TotalEnergyMillijoules(); return err }},
		{"ECC", func() error { _, _, err := d.ECCVolatile(); return err }},
		{"Processes", func() error { _, err := d.ComputeProcesses(); return err }},
	}
	for _, c := range calls {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				_ = c.fn()
			}
		})
	}
}
