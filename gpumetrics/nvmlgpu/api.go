// Package nvmlgpu reads NVIDIA GPUs through NVML (github.com/NVIDIA/go-nvml)
// behind a small interface, API, so that the sweep logic (which fields to
// read, what "not supported" means, when to re-initialise) is plain Go that
// tests drive with a fake.
//
// The real API needs Linux and cgo (go-nvml dlopens libnvidia-ml.so.1);
// backend_nvml.go provides it under `linux && cgo` and
// backend_unavailable.go stands in elsewhere, reporting why.
package nvmlgpu

import (
	"errors"
	"fmt"
)

// Status classifies an NVML return code into what the sweep acts on.
type Status int

const (
	// StatusUnknown is any failure not listed below.
	StatusUnknown Status = iota
	// StatusNotSupported: the board or driver lacks the figure; it is left
	// out, not reported as an error.
	StatusNotSupported
	// StatusNoPermission: the figure needs privileges the process lacks.
	StatusNoPermission
	// StatusLibraryNotFound: libnvidia-ml.so.1 could not be loaded (no
	// driver installed, or not mounted into the container).
	StatusLibraryNotFound
	// StatusDriverNotLoaded: the library is there but the kernel module is not.
	StatusDriverNotLoaded
	// StatusDriverMismatch: library and kernel module versions differ.
	StatusDriverMismatch
	// StatusUninitialized: NVML was shut down under us; re-initialise.
	StatusUninitialized
	// StatusGPULost: the GPU fell off the bus; re-initialise next sweep.
	StatusGPULost
	// StatusTimeout: no event was waiting (event set polling).
	StatusTimeout
	// StatusUnavailable: this build cannot use NVML at all (no cgo).
	StatusUnavailable
	// StatusNoData: the figure exists but has no value yet (a rate that
	// needs two samples); it is left out this sweep and asked again.
	StatusNoData
)

// Error is an NVML failure: its class and NVML's own message.
type Error struct {
	Status Status
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// StatusOf returns the Status of err (StatusUnknown for foreign errors).
func StatusOf(err error) Status {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return StatusUnknown
}

// lifecycle reports errors after which NVML must be shut down and
// initialised again (driver reloaded, GPU lost).
func lifecycle(err error) bool {
	switch StatusOf(err) {
	case StatusUninitialized, StatusGPULost, StatusDriverNotLoaded, StatusDriverMismatch:
		return true
	}
	return false
}

// Clock event reason bits (nvml.h nvmlClocksEventReason*).
var clockEventReasons = []struct {
	bit  uint64
	name string
}{
	{0x1, "gpu_idle"},
	{0x2, "applications_clocks_setting"},
	{0x4, "sw_power_cap"},
	{0x8, "hw_slowdown"},
	{0x10, "sync_boost"},
	{0x20, "sw_thermal_slowdown"},
	{0x40, "hw_thermal_slowdown"},
	{0x80, "hw_power_brake_slowdown"},
	{0x100, "display_clock_setting"},
}

// ClockEventReasonNames spells out the set bits of an NVML clocks event
// reason mask; unknown bits are named by their hex value.
func ClockEventReasonNames(mask uint64) []string {
	names := []string{}
	for _, r := range clockEventReasons {
		if mask&r.bit != 0 {
			names = append(names, r.name)
			mask &^= r.bit
		}
	}
	for bit := uint64(1); mask != 0 && bit != 0; bit <<= 1 {
		if mask&bit != 0 {
			names = append(names, fmt.Sprintf("0x%x", bit))
			mask &^= bit
		}
	}
	return names
}

// API is the part of NVML the sweep uses. Calls come from one goroutine at
// a time.
type API interface {
	// Init loads the library and initialises NVML (reference counted).
	Init() error
	// Shutdown undoes one Init and releases the event set.
	Shutdown() error
	DriverVersion() (string, error)
	// CUDADriverVersion is NVML's integer form, 12040 for 12.4.
	CUDADriverVersion() (int, error)
	DeviceCount() (int, error)
	Device(index int) (Device, error)
	// ProcessName returns the name of a process using a GPU.
	ProcessName(pid uint32) (string, error)
	// RegisterXID asks for XID critical-error events from d; a board
	// without them returns StatusNotSupported.
	RegisterXID(d Device) error
	// PollXID returns one pending XID event without waiting; StatusTimeout
	// when none is pending.
	PollXID() (XIDEvent, error)
}

// XIDEvent is one XID error reported by the driver.
type XIDEvent struct {
	UUID string
	XID  uint64
}

// Device is one GPU handle. Every figure may fail on its own: the sweep
// leaves that figure out and keeps the rest.
type Device interface {
	Name() (string, error)
	UUID() (string, error)
	PCIBusID() (string, error)
	MinorNumber() (int, error)
	// ComputeCapability is the board's CUDA compute capability (9.0 for
	// Hopper, 10.0 and 12.0 for Blackwell): the architecture a CUDA build
	// must carry kernels for.
	ComputeCapability() (major, minor int, err error)
	// Utilization returns GPU and memory-controller busy percentages.
	Utilization() (gpu, memory uint32, err error)
	// Memory returns framebuffer total, used and free bytes.
	Memory() (total, used, free uint64, err error)
	TemperatureC() (uint32, error)
	PowerUsageMilliwatts() (uint32, error)
	PowerLimitMilliwatts() (uint32, error)
	FanSpeedPercent() (uint32, error)
	SMClockMHz() (uint32, error)
	MemoryClockMHz() (uint32, error)
	PCIeLinkGen() (int, error)
	PCIeLinkWidth() (int, error)
	ClockEventReasons() (uint64, error)
	TotalEnergyMillijoules() (uint64, error)
	// ECCVolatile returns corrected and uncorrected volatile ECC totals.
	ECCVolatile() (corrected, uncorrected uint64, err error)
	ComputeProcesses() ([]ProcessInfo, error)

	// The figures below complete dcgm-exporter's default counters; each
	// returns StatusNotSupported on a board without it.

	// MemoryTemperatureC is the memory (HBM) temperature.
	MemoryTemperatureC() (uint32, error)
	// PCIeThroughputKB is NVML's PCIe TX and RX throughput in KB over its
	// sample window (what DCGM exports as PCIE_TX/RX_THROUGHPUT).
	PCIeThroughputKB() (tx, rx uint32, err error)
	// PCIeReplays counts PCIe retries.
	PCIeReplays() (uint64, error)
	// EncoderUtilization and DecoderUtilization are NVENC/NVDEC busy %.
	EncoderUtilization() (uint32, error)
	DecoderUtilization() (uint32, error)
	// NVLinkDataKiB is the data transmitted plus received over all
	// NVLinks; StatusNotSupported on a board without NVLink.
	NVLinkDataKiB() (uint64, error)
	// VGPULicenseStatus is 1 when a vGPU guest is licensed, 0 when not;
	// StatusNotSupported outside a vGPU guest.
	VGPULicenseStatus() (uint32, error)
	// RemappedRows returns rows remapped for correctable and
	// uncorrectable errors, and whether a remapping failed.
	RemappedRows() (corrected, uncorrected uint64, failed bool, err error)
	// TensorActive is the share (0..1) of cycles a tensor pipe was busy
	// since the previous call; StatusNoData on the first call.
	TensorActive() (float64, error)
}

// ProcessInfo is a compute process on a GPU. UsedMemory is nil where the
// driver does not say (NVML_VALUE_NOT_AVAILABLE, e.g. inside containers).
type ProcessInfo struct {
	PID        uint32
	UsedMemory *uint64
}
