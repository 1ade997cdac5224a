// Package nvmlfake is a table-driven stand-in for NVML that honours the
// nvmlgpu.API contract: devices are plain structs, and any figure can be
// made to fail with "not supported" or another NVML error.
package nvmlfake

import (
	"sync"

	"github.com/instanceportal/portal/gpumetrics/nvmlgpu"
)

// Errors NVML returns, as the real backend classifies them.
var (
	NotSupported    = &nvmlgpu.Error{Status: nvmlgpu.StatusNotSupported, Msg: "Not Supported"}
	NoPermission    = &nvmlgpu.Error{Status: nvmlgpu.StatusNoPermission, Msg: "Insufficient Permissions"}
	LibraryNotFound = &nvmlgpu.Error{Status: nvmlgpu.StatusLibraryNotFound, Msg: "ERROR_LIBRARY_NOT_FOUND"}
	DriverMismatch  = &nvmlgpu.Error{Status: nvmlgpu.StatusDriverMismatch, Msg: "RM has detected an NVML/RM version mismatch."}
	GPULost         = &nvmlgpu.Error{Status: nvmlgpu.StatusGPULost, Msg: "GPU is lost"}
	Unknown         = &nvmlgpu.Error{Status: nvmlgpu.StatusUnknown, Msg: "Unknown Error"}
	noEvent         = &nvmlgpu.Error{Status: nvmlgpu.StatusTimeout, Msg: "Timeout"}
	noData          = &nvmlgpu.Error{Status: nvmlgpu.StatusNoData, Msg: "first sample"}
)

// Device is one fake GPU. Errs maps a figure to the error its getter
// returns: "name", "uuid", "pci_bus_id", "minor_number", "compute_capability", "utilization",
// "memory", "temperature", "power_draw", "power_limit", "fan_speed",
// "sm_clock", "memory_clock", "pcie_link_gen", "pcie_link_width",
// "clock_event_reasons", "energy", "ecc", "processes", "xid" (RegisterXID),
// "memory_temp", "pcie_throughput", "pcie_replays", "encoder", "decoder",
// "nvlink", "vgpu_license", "remapped_rows", "tensor_active".
type Device struct {
	Name, UUID, BusID            string
	Minor                        int
	CCMajor, CCMinor             int // compute capability
	GPUUtil, MemUtil             uint32
	Total, Used, Free            uint64
	TempC, PowerMW, LimitMW      uint32
	FanPct, SMMHz, MemMHz        uint32
	LinkGen, LinkWidth           int
	Reasons, EnergyMJ            uint64
	ECCCorrected, ECCUncorrected uint64
	Procs                        []nvmlgpu.ProcessInfo
	// The figures that complete dcgm-exporter's default counters.
	MemTempC, PCIeTxKB, PCIeRxKB uint32
	PCIeReplays, NVLinkKiB       uint64
	EncPct, DecPct, VGPULicense  uint32
	RowsCorrected, RowsUncorr    uint64
	RowRemapFailed               bool
	// TensorActive is returned from the second call on; the first says
	// StatusNoData, as the real rate does.
	TensorActive float64
	Errs         map[string]error
	// Calls counts the getter calls per figure name (same names as Errs).
	Calls map[string]int
}

// API is a fake NVML. Set fields before the first Sweep; read the counters
// after (Counts locks, for readers in other goroutines).
type API struct {
	Devices   []*Device
	InitErr   error
	Driver    string
	CUDA      int
	ProcNames map[uint32]string
	// XIDs are delivered by PollXID, one per call, oldest first.
	XIDs []nvmlgpu.XIDEvent
	// Block, when set, makes DeviceCount wait until it is closed: a stuck
	// driver call.
	Block chan struct{}

	mu               sync.Mutex
	inits, shutdowns int
	countCalls       int
}

// Counts returns how many times Init, Shutdown and DeviceCount ran.
func (a *API) Counts() (inits, shutdowns, deviceCounts int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.inits, a.shutdowns, a.countCalls
}

func (a *API) Init() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.inits++
	return a.InitErr
}

func (a *API) Shutdown() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.shutdowns++
	return nil
}

func (a *API) DriverVersion() (string, error) {
	if a.Driver == "" {
		return "", NotSupported
	}
	return a.Driver, nil
}

func (a *API) CUDADriverVersion() (int, error) {
	if a.CUDA == 0 {
		return 0, NotSupported
	}
	return a.CUDA, nil
}

func (a *API) DeviceCount() (int, error) {
	if a.Block != nil {
		<-a.Block
	}
	a.mu.Lock()
	a.countCalls++
	a.mu.Unlock()
	return len(a.Devices), nil
}

func (a *API) Device(i int) (nvmlgpu.Device, error) {
	if i < 0 || i >= len(a.Devices) {
		return nil, Unknown
	}
	return dev{a.Devices[i]}, nil
}

func (a *API) ProcessName(pid uint32) (string, error) {
	if n, ok := a.ProcNames[pid]; ok {
		return n, nil
	}
	return "", Unknown
}

func (a *API) RegisterXID(d nvmlgpu.Device) error {
	fd, ok := d.(dev)
	if !ok {
		return NotSupported
	}
	return fd.err("xid")
}

func (a *API) PollXID() (nvmlgpu.XIDEvent, error) {
	if len(a.XIDs) == 0 {
		return nvmlgpu.XIDEvent{}, noEvent
	}
	ev := a.XIDs[0]
	a.XIDs = a.XIDs[1:]
	return ev, nil
}

type dev struct{ d *Device }

func (d dev) err(field string) error {
	if d.d.Calls == nil {
		d.d.Calls = map[string]int{}
	}
	d.d.Calls[field]++
	return d.d.Errs[field]
}

func (d dev) Name() (string, error)     { return d.d.Name, d.err("name") }
func (d dev) UUID() (string, error)     { return d.d.UUID, d.err("uuid") }
func (d dev) PCIBusID() (string, error) { return d.d.BusID, d.err("pci_bus_id") }
func (d dev) MinorNumber() (int, error) { return d.d.Minor, d.err("minor_number") }
func (d dev) ComputeCapability() (int, int, error) {
	return d.d.CCMajor, d.d.CCMinor, d.err("compute_capability")
}
func (d dev) Utilization() (uint32, uint32, error) {
	return d.d.GPUUtil, d.d.MemUtil, d.err("utilization")
}
func (d dev) Memory() (uint64, uint64, uint64, error) {
	return d.d.Total, d.d.Used, d.d.Free, d.err("memory")
}
func (d dev) TemperatureC() (uint32, error)           { return d.d.TempC, d.err("temperature") }
func (d dev) PowerUsageMilliwatts() (uint32, error)   { return d.d.PowerMW, d.err("power_draw") }
func (d dev) PowerLimitMilliwatts() (uint32, error)   { return d.d.LimitMW, d.err("power_limit") }
func (d dev) FanSpeedPercent() (uint32, error)        { return d.d.FanPct, d.err("fan_speed") }
func (d dev) SMClockMHz() (uint32, error)             { return d.d.SMMHz, d.err("sm_clock") }
func (d dev) MemoryClockMHz() (uint32, error)         { return d.d.MemMHz, d.err("memory_clock") }
func (d dev) PCIeLinkGen() (int, error)               { return d.d.LinkGen, d.err("pcie_link_gen") }
func (d dev) PCIeLinkWidth() (int, error)             { return d.d.LinkWidth, d.err("pcie_link_width") }
func (d dev) ClockEventReasons() (uint64, error)      { return d.d.Reasons, d.err("clock_event_reasons") }
func (d dev) TotalEnergyMillijoules() (uint64, error) { return d.d.EnergyMJ, d.err("energy") }
func (d dev) ECCVolatile() (uint64, uint64, error) {
	return d.d.ECCCorrected, d.d.ECCUncorrected, d.err("ecc")
}
func (d dev) ComputeProcesses() ([]nvmlgpu.ProcessInfo, error) {
	return d.d.Procs, d.err("processes")
}
func (d dev) MemoryTemperatureC() (uint32, error) { return d.d.MemTempC, d.err("memory_temp") }
func (d dev) PCIeThroughputKB() (uint32, uint32, error) {
	return d.d.PCIeTxKB, d.d.PCIeRxKB, d.err("pcie_throughput")
}
func (d dev) PCIeReplays() (uint64, error)        { return d.d.PCIeReplays, d.err("pcie_replays") }
func (d dev) EncoderUtilization() (uint32, error) { return d.d.EncPct, d.err("encoder") }
func (d dev) DecoderUtilization() (uint32, error) { return d.d.DecPct, d.err("decoder") }
func (d dev) NVLinkDataKiB() (uint64, error)      { return d.d.NVLinkKiB, d.err("nvlink") }
func (d dev) VGPULicenseStatus() (uint32, error)  { return d.d.VGPULicense, d.err("vgpu_license") }
func (d dev) RemappedRows() (uint64, uint64, bool, error) {
	return d.d.RowsCorrected, d.d.RowsUncorr, d.d.RowRemapFailed, d.err("remapped_rows")
}
func (d dev) TensorActive() (float64, error) {
	if err := d.err("tensor_active"); err != nil {
		return 0, err
	}
	if d.d.Calls["tensor_active"] == 1 {
		return 0, noData
	}
	return d.d.TensorActive, nil
}

// H100 returns a fully populated fake board (an 80 GB H100 SXM, NVLink,
// not a vGPU guest) with index i; tests change fields from there.
func H100(i int) *Device {
	used := uint64(30 << 30)
	return &Device{
		Name: "NVIDIA H100 80GB HBM3", UUID: "GPU-00000000-0000-0000-0000-00000000000" + string(rune('0'+i%10)),
		BusID: "00000000:1" + string(rune('0'+i%10)) + ":00.0", Minor: i, CCMajor: 9, CCMinor: 0,
		GPUUtil: 87, MemUtil: 41,
		Total: 80 << 30, Used: used, Free: 80<<30 - used,
		TempC: 61, PowerMW: 512345, LimitMW: 700000, FanPct: 0,
		SMMHz: 1980, MemMHz: 2619, LinkGen: 5, LinkWidth: 16,
		Reasons: 0x4, EnergyMJ: 123456789, ECCCorrected: 2, ECCUncorrected: 0,
		Procs:    []nvmlgpu.ProcessInfo{{PID: 4242, UsedMemory: &used}},
		MemTempC: 72, PCIeTxKB: 12345, PCIeRxKB: 67890, PCIeReplays: 3, NVLinkKiB: 987654321,
		EncPct: 0, DecPct: 12, RowsCorrected: 1, RowsUncorr: 0, TensorActive: 0.625,
		Errs: map[string]error{"fan_speed": NotSupported, "vgpu_license": NotSupported},
	}
}

// RTX4090 returns a consumer board with index i: no NVLink, no memory
// temperature sensor, no row remapping, no GPU performance monitoring,
// not a vGPU guest. It shows what "absent" looks like.
func RTX4090(i int) *Device {
	d := H100(i)
	d.Name, d.Total, d.LimitMW, d.LinkGen, d.FanPct = "NVIDIA GeForce RTX 4090", 24<<30, 450000, 4, 30
	d.CCMajor, d.CCMinor = 8, 9
	d.Used, d.Free = 2<<30, 22<<30
	d.Errs = map[string]error{
		"memory_temp": NotSupported, "nvlink": NotSupported, "vgpu_license": NotSupported,
		"remapped_rows": NotSupported, "tensor_active": NotSupported, "ecc": NotSupported,
	}
	return d
}

// VGPU returns an H100 seen from a licensed vGPU guest with index i.
func VGPU(i int) *Device {
	d := H100(i)
	d.VGPULicense = 1
	delete(d.Errs, "vgpu_license")
	return d
}

var _ nvmlgpu.API = (*API)(nil)
