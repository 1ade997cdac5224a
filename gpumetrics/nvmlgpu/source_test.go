package nvmlgpu_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/instanceportal/portal/gpumetrics/nvmlgpu"
	"github.com/instanceportal/portal/gpumetrics/nvmlgpu/nvmlfake"
)

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newSource(api nvmlgpu.API, c *clock) *nvmlgpu.Source {
	s := nvmlgpu.NewSource(api)
	s.Now = c.now
	return s
}

func TestSweepReadsEveryField(t *testing.T) {
	api := &nvmlfake.API{Devices: []*nvmlfake.Device{nvmlfake.H100(0)}, Driver: "550.54.15", CUDA: 12040,
		ProcNames: map[uint32]string{4242: "python3\n"}}
	src := newSource(api, &clock{time.Unix(0, 0)})
	rep := src.Sweep(context.Background())
	if !rep.Available || rep.Backend != "nvml" || rep.DriverVersion != "550.54.15" || rep.CUDAVersion != "12.4" {
		t.Fatalf("report header: %+v", rep)
	}
	g := rep.GPUs[0]
	if g.Name != "NVIDIA H100 80GB HBM3" || g.Device != "nvidia0" || *g.MemoryTotalBytes != 80<<30 ||
		*g.PowerDrawWatts != 512.345 || *g.PowerLimitWatts != 700 || *g.SMClockMHz != 1980 || *g.PCIeLinkGen != 5 {
		t.Errorf("figures: %+v", g)
	}
	if g.FanSpeedPercent != nil {
		t.Errorf("fan speed is NOT_SUPPORTED on the fake H100 and must be absent, got %v", *g.FanSpeedPercent)
	}
	if len(g.FieldErrors) != 0 {
		t.Errorf("not supported is absence, not an error: %v", g.FieldErrors)
	}
	if !reflect.DeepEqual(g.ClockEventReasonNames, []string{"sw_power_cap"}) {
		t.Errorf("clock event names: %v", g.ClockEventReasonNames)
	}
	if len(g.Processes) != 1 || g.Processes[0].Name != "python3" || *g.Processes[0].UsedMemoryBytes != 30<<30 {
		t.Errorf("processes: %+v", g.Processes)
	}
	if g.XIDLast == nil || *g.XIDLast != 0 || *g.XIDCount != 0 {
		t.Errorf("XID registered but no event: want 0/0, got %v/%v", g.XIDLast, g.XIDCount)
	}
}

func TestPerFieldErrors(t *testing.T) {
	d := nvmlfake.H100(0)
	d.Errs = map[string]error{
		"temperature": nvmlfake.NotSupported,
		"power_draw":  nvmlfake.NoPermission,
		"processes":   nvmlfake.NotSupported,
		"xid":         nvmlfake.NotSupported,
		"ecc":         nvmlfake.NotSupported,
	}
	api := &nvmlfake.API{Devices: []*nvmlfake.Device{d, nvmlfake.H100(1)}}
	rep := newSource(api, &clock{}).Sweep(context.Background())
	if len(rep.GPUs) != 2 {
		t.Fatalf("a failing field must not drop the GPU: %d GPUs", len(rep.GPUs))
	}
	g := rep.GPUs[0]
	if g.TemperatureC != nil || g.PowerDrawWatts != nil || g.Processes != nil || g.XIDLast != nil || g.ECCCorrected != nil {
		t.Errorf("failed fields must be absent: %+v", g)
	}
	if g.FieldErrors["power_draw"] != "Insufficient Permissions" || len(g.FieldErrors) != 1 {
		t.Errorf("field errors: %v", g.FieldErrors)
	}
	if g.UtilizationPercent == nil || *g.UtilizationPercent != 87 {
		t.Errorf("other fields must stay: %+v", g)
	}
	if rep.GPUs[1].TemperatureC == nil {
		t.Errorf("second GPU lost its temperature")
	}
}

func TestXIDEvents(t *testing.T) {
	a, b := nvmlfake.H100(0), nvmlfake.H100(1)
	api := &nvmlfake.API{Devices: []*nvmlfake.Device{a, b}}
	src := newSource(api, &clock{})
	src.Sweep(context.Background())
	api.XIDs = []nvmlgpu.XIDEvent{{UUID: b.UUID, XID: 79}, {UUID: b.UUID, XID: 48}}
	rep := src.Sweep(context.Background())
	if *rep.GPUs[1].XIDLast != 48 || *rep.GPUs[1].XIDCount != 2 || *rep.GPUs[0].XIDCount != 0 {
		t.Errorf("xid: gpu0 %v/%v gpu1 %v/%v", *rep.GPUs[0].XIDLast, *rep.GPUs[0].XIDCount, *rep.GPUs[1].XIDLast, *rep.GPUs[1].XIDCount)
	}
}

func TestInitFailureReasonsAndRetry(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nvmlfake.LibraryNotFound, "NVML library not found (libnvidia-ml.so.1): no NVIDIA driver on this machine or not mounted into the container"},
		{nvmlfake.DriverMismatch, "NVIDIA driver/library version mismatch (reboot or reload the driver): RM has detected an NVML/RM version mismatch."},
		{nvmlfake.Unknown, "NVML init failed: Unknown Error"},
	} {
		api := &nvmlfake.API{InitErr: tc.err}
		c := &clock{time.Unix(100, 0)}
		src := newSource(api, c)
		rep := src.Sweep(context.Background())
		if rep.Available || rep.Reason != tc.want || rep.GPUs == nil {
			t.Errorf("%v: got %+v", tc.err, rep)
		}
		src.Sweep(context.Background())
		if n, _, _ := api.Counts(); n != 1 {
			t.Errorf("%v: Init retried within Retry: %d calls", tc.err, n)
		}
		c.t = c.t.Add(nvmlgpu.DefaultRetry)
		api.InitErr = nil
		api.Devices = []*nvmlfake.Device{nvmlfake.H100(0)}
		if rep := src.Sweep(context.Background()); !rep.Available {
			t.Errorf("%v: not recovered after Retry: %q", tc.err, rep.Reason)
		}
	}
}

func TestNoDevice(t *testing.T) {
	api := &nvmlfake.API{}
	rep := newSource(api, &clock{}).Sweep(context.Background())
	if rep.Available || rep.Reason != "NVML: no NVIDIA device found" {
		t.Fatalf("got %+v", rep)
	}
	if inits, shutdowns, _ := api.Counts(); inits != 1 || shutdowns != 1 {
		t.Errorf("init/shutdown must pair: %d/%d", inits, shutdowns)
	}
}

func TestGPULostReinitialises(t *testing.T) {
	d := nvmlfake.H100(0)
	api := &nvmlfake.API{Devices: []*nvmlfake.Device{d}}
	src := newSource(api, &clock{})
	src.Sweep(context.Background())
	d.Errs = map[string]error{"temperature": nvmlfake.GPULost}
	rep := src.Sweep(context.Background())
	if rep.GPUs[0].FieldErrors["temperature"] != "GPU is lost" {
		t.Errorf("lost GPU field error: %v", rep.GPUs[0].FieldErrors)
	}
	d.Errs = nil
	src.Sweep(context.Background())
	inits, shutdowns, _ := api.Counts()
	if inits != 2 || shutdowns != 1 {
		t.Errorf("want shutdown + re-init after GPU lost, got inits=%d shutdowns=%d", inits, shutdowns)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if _, s, _ := api.Counts(); s != 2 {
		t.Errorf("Close must shut down: %d", s)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if _, s, _ := api.Counts(); s != 2 {
		t.Errorf("second Close must be a no-op: %d", s)
	}
}

func TestClockEventReasonNames(t *testing.T) {
	for mask, want := range map[uint64][]string{
		0:           {},
		0x1:         {"gpu_idle"},
		0x44:        {"sw_power_cap", "hw_thermal_slowdown"},
		0x1 | 1<<40: {"gpu_idle", "0x10000000000"},
	} {
		if got := nvmlgpu.ClockEventReasonNames(mask); !reflect.DeepEqual(got, want) {
			t.Errorf("%#x: got %v want %v", mask, got, want)
		}
	}
}

// TestRealBackendWithoutDriver: on a machine without the NVIDIA driver
// (CI, this build machine) the real backend must report a clean reason.
func TestRealBackendWithoutDriver(t *testing.T) {
	api := nvmlgpu.Real()
	err := api.Init()
	if err == nil {
		_ = api.Shutdown()
		t.Skip("NVML initialised: this machine has an NVIDIA driver")
	}
	want := nvmlgpu.StatusLibraryNotFound
	if !nvmlgpu.Supported {
		want = nvmlgpu.StatusUnavailable
	}
	var e *nvmlgpu.Error
	if !errors.As(err, &e) || e.Status != want {
		t.Fatalf("Init without a driver: %v (status %v), want status %v", err, nvmlgpu.StatusOf(err), want)
	}
	rep := nvmlgpu.NewSource(api).Sweep(context.Background())
	if rep.Available || rep.Reason == "" {
		t.Fatalf("report: %+v", rep)
	}
	t.Logf("reason: %s", rep.Reason)
}

// TestSweepSkipsSlowAndUnsupportedCalls: a figure NVML says it does not
// support is not asked for again, and the slow energy counter is re-read
// only every EnergyEvery.
func TestSweepSkipsSlowAndUnsupportedCalls(t *testing.T) {
	d := nvmlfake.H100(0) // fan speed: not supported
	api := &nvmlfake.API{Devices: []*nvmlfake.Device{d}}
	c := &clock{time.Unix(1000, 0)}
	src := newSource(api, c)
	for range 3 {
		src.Sweep(context.Background())
	}
	if d.Calls["fan_speed"] != 1 || d.Calls["temperature"] != 3 {
		t.Errorf("calls after 3 sweeps: fan %d (want 1), temperature %d (want 3)", d.Calls["fan_speed"], d.Calls["temperature"])
	}
	if d.Calls["energy"] != 1 {
		t.Errorf("energy read %d times within EnergyEvery, want 1", d.Calls["energy"])
	}
	d.EnergyMJ += 5000
	rep := src.Sweep(context.Background())
	if *rep.GPUs[0].EnergyMillijoules != 123456789 {
		t.Errorf("within EnergyEvery the last reading is served, got %d", *rep.GPUs[0].EnergyMillijoules)
	}
	c.t = c.t.Add(nvmlgpu.DefaultEnergyEvery)
	rep = src.Sweep(context.Background())
	if d.Calls["energy"] != 2 || *rep.GPUs[0].EnergyMillijoules != 123456789+5000 {
		t.Errorf("energy not refreshed after EnergyEvery: %d calls, value %d", d.Calls["energy"], *rep.GPUs[0].EnergyMillijoules)
	}
}

// TestDCGMParityFields: every figure added for dcgm-exporter parity is read
// where the board has it, absent (nil, no field error, not asked again)
// where it does not, and the tensor rate waits for its second sample.
func TestDCGMParityFields(t *testing.T) {
	h100, rtx, vgpu := nvmlfake.H100(0), nvmlfake.RTX4090(1), nvmlfake.VGPU(2)
	api := &nvmlfake.API{Devices: []*nvmlfake.Device{h100, rtx, vgpu}}
	src := newSource(api, &clock{})
	first := src.Sweep(context.Background())
	if g := first.GPUs[0]; g.TensorActiveRatio != nil || len(g.FieldErrors) != 0 {
		t.Errorf("first sweep: tensor rate needs two samples, got %v, errors %v", g.TensorActiveRatio, g.FieldErrors)
	}
	rep := src.Sweep(context.Background())
	g := rep.GPUs[0]
	if g.MemoryTemperatureC == nil || *g.MemoryTemperatureC != 72 || *g.PCIeTxKB != 12345 || *g.PCIeRxKB != 67890 ||
		*g.PCIeReplays != 3 || *g.EncoderUtilizationPercent != 0 || *g.DecoderUtilizationPercent != 12 ||
		*g.NVLinkBandwidthKiB != 987654321 || *g.RemappedRowsCorrectable != 1 || *g.RemappedRowsUncorrectable != 0 ||
		*g.RowRemapFailure || *g.TensorActiveRatio != 0.625 {
		t.Errorf("H100 figures: %+v", g)
	}
	if g.VGPULicenseStatus != nil {
		t.Errorf("not a vGPU guest: licence status must be absent, got %d", *g.VGPULicenseStatus)
	}
	r := rep.GPUs[1]
	if r.MemoryTemperatureC != nil || r.NVLinkBandwidthKiB != nil || r.RemappedRowsCorrectable != nil ||
		r.RowRemapFailure != nil || r.TensorActiveRatio != nil || r.VGPULicenseStatus != nil || len(r.FieldErrors) != 0 {
		t.Errorf("RTX 4090: missing figures must be absent, not zero or errors: %+v", r)
	}
	if r.PCIeTxKB == nil || r.EncoderUtilizationPercent == nil {
		t.Errorf("RTX 4090 lost figures it has: %+v", r)
	}
	if v := rep.GPUs[2].VGPULicenseStatus; v == nil || *v != 1 {
		t.Errorf("vGPU guest licence status: %v", v)
	}
	src.Sweep(context.Background())
	if rtx.Calls["nvlink"] != 1 || rtx.Calls["memory_temp"] != 1 || h100.Calls["nvlink"] != 3 {
		t.Errorf("unsupported figures must not be asked again: rtx nvlink %d memory_temp %d, h100 nvlink %d",
			rtx.Calls["nvlink"], rtx.Calls["memory_temp"], h100.Calls["nvlink"])
	}
	d := nvmlfake.H100(0)
	d.Errs = map[string]error{"remapped_rows": nvmlfake.Unknown}
	rep = newSource(&nvmlfake.API{Devices: []*nvmlfake.Device{d}}, &clock{}).Sweep(context.Background())
	if rep.GPUs[0].RemappedRowsCorrectable != nil || rep.GPUs[0].FieldErrors["remapped_rows"] != "Unknown Error" {
		t.Errorf("a failing figure is absent and named: %+v", rep.GPUs[0])
	}
}
