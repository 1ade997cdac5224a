// Package gpumetrics samples GPU and system figures for the portal's gauges
// and for Prometheus. It never imports Caddy: caddymodules/gpu_metrics.go
// wires a shared Collector into an HTTP handler.
//
// The model is deliberately "absent means unknown": every figure a board or
// driver may not provide is a pointer (or a nil slice) and is left out of
// the JSON and of the Prometheus output, instead of being reported as zero.
package gpumetrics

import "time"

// Snapshot is one published sample: the GPU report of the latest sweep plus
// the system figures read in the same sweep.
type Snapshot struct {
	// SampledAt is when the sweep that produced this snapshot started.
	SampledAt time.Time `json:"sampled_at"`
	// Stale is true when the latest sweep did not finish in time and this is
	// the previous sample served again; StaleReason says why.
	Stale       bool   `json:"stale"`
	StaleReason string `json:"stale_reason,omitempty"`
	// SweepSeconds is how long the sweep took (GPU and system together).
	SweepSeconds float64 `json:"sweep_seconds"`
	Hostname     string  `json:"hostname,omitempty"`

	GPUReport

	System System `json:"system"`
}

// GPUReport is what a GPU source returns from one sweep.
type GPUReport struct {
	// Available is false when no GPU could be read; Reason then says why
	// (library not found, no device, driver/library mismatch, ...).
	Available bool   `json:"available"`
	Reason    string `json:"reason,omitempty"`
	// ReasonCode is Reason in one short word (one of the Reason*
	// constants), stable enough for an alert rule; it is the `reason`
	// label of portal_gpu_available, while the long text stays here.
	ReasonCode string `json:"reason_code,omitempty"`
	// Backend names the source that produced GPUs: "nvml" or "rocm-smi".
	Backend       string `json:"backend,omitempty"`
	DriverVersion string `json:"driver_version,omitempty"`
	CUDAVersion   string `json:"cuda_version,omitempty"`
	GPUs          []GPU  `json:"gpus"`
}

// GPU holds one board's figures. Pointers are nil when the board or driver
// does not report the figure (NVML's NOT_SUPPORTED, a missing rocm-smi key).
type GPU struct {
	Index    int    `json:"index"`
	Name     string `json:"name,omitempty"`
	UUID     string `json:"uuid,omitempty"`
	PCIBusID string `json:"pci_bus_id,omitempty"`
	// Device is the device node name, "nvidia0" (dcgm-exporter's device label).
	Device string `json:"device,omitempty"`
	// ComputeCapability is the CUDA compute capability, "9.0" (NVIDIA only).
	ComputeCapability string `json:"compute_capability,omitempty"`

	UtilizationPercent       *float64 `json:"utilization_percent,omitempty"`
	MemoryUtilizationPercent *float64 `json:"memory_utilization_percent,omitempty"`
	MemoryTotalBytes         *uint64  `json:"memory_total_bytes,omitempty"`
	MemoryUsedBytes          *uint64  `json:"memory_used_bytes,omitempty"`
	MemoryFreeBytes          *uint64  `json:"memory_free_bytes,omitempty"`
	TemperatureC             *float64 `json:"temperature_c,omitempty"`
	PowerDrawWatts           *float64 `json:"power_draw_watts,omitempty"`
	PowerLimitWatts          *float64 `json:"power_limit_watts,omitempty"`
	FanSpeedPercent          *float64 `json:"fan_speed_percent,omitempty"`
	SMClockMHz               *uint32  `json:"sm_clock_mhz,omitempty"`
	MemoryClockMHz           *uint32  `json:"memory_clock_mhz,omitempty"`
	PCIeLinkGen              *int     `json:"pcie_link_gen,omitempty"`
	PCIeLinkWidth            *int     `json:"pcie_link_width,omitempty"`
	// ClockEventReasons is NVML's clocks-event (throttle) bit mask;
	// ClockEventReasonNames spells out the bits that are set.
	ClockEventReasons     *uint64  `json:"clock_event_reasons,omitempty"`
	ClockEventReasonNames []string `json:"clock_event_reason_names,omitzero"`
	// EnergyMillijoules is the energy used since the driver was loaded.
	EnergyMillijoules *uint64 `json:"energy_millijoules,omitempty"`
	// XIDLast is the most recent XID error code seen since sampling started
	// (0: none), XIDCount how many were seen. Both nil where the driver does
	// not deliver XID events for this board.
	XIDLast  *uint64 `json:"xid_last,omitempty"`
	XIDCount *uint64 `json:"xid_count,omitempty"`
	// Volatile ECC error counts (since the driver was loaded); nil without ECC.
	ECCCorrected   *uint64 `json:"ecc_corrected,omitempty"`
	ECCUncorrected *uint64 `json:"ecc_uncorrected,omitempty"`
	// MemoryTemperatureC is the HBM/GDDR temperature; nil on boards
	// without a memory sensor.
	MemoryTemperatureC *float64 `json:"memory_temperature_c,omitempty"`
	// PCIeTxKB and PCIeRxKB are NVML's PCIe throughput (KB over its
	// 20 ms sample window, as DCGM reports them).
	PCIeTxKB *uint64 `json:"pcie_tx_kb,omitempty"`
	PCIeRxKB *uint64 `json:"pcie_rx_kb,omitempty"`
	// PCIeReplays counts PCIe retries since the driver was loaded.
	PCIeReplays *uint64 `json:"pcie_replays,omitempty"`
	// Encoder and decoder (NVENC/NVDEC) busy percentages.
	EncoderUtilizationPercent *float64 `json:"encoder_utilization_percent,omitempty"`
	DecoderUtilizationPercent *float64 `json:"decoder_utilization_percent,omitempty"`
	// NVLinkBandwidthKiB is the data sent plus received over all NVLinks
	// since the driver was loaded; nil on a board without NVLink.
	NVLinkBandwidthKiB *uint64 `json:"nvlink_bandwidth_kib,omitempty"`
	// VGPULicenseStatus is 1 when this vGPU guest holds a licence, 0
	// when not; nil outside a vGPU guest.
	VGPULicenseStatus *uint64 `json:"vgpu_license_status,omitempty"`
	// Row remapping (Ampere and later): rows remapped for correctable
	// and uncorrectable errors, and whether a remapping failed.
	RemappedRowsCorrectable   *uint64 `json:"remapped_rows_correctable,omitempty"`
	RemappedRowsUncorrectable *uint64 `json:"remapped_rows_uncorrectable,omitempty"`
	RowRemapFailure           *bool   `json:"row_remap_failure,omitempty"`
	// TensorActiveRatio is the share of cycles a tensor pipe was busy
	// over the last interval (0..1, DCGM's DCGM_FI_PROF_PIPE_TENSOR_ACTIVE),
	// from NVML's GPU performance monitoring (Hopper and later).
	TensorActiveRatio *float64 `json:"tensor_active_ratio,omitempty"`
	// Processes are the compute processes on the board; nil when the driver
	// cannot list them, empty when there are none.
	Processes []Process `json:"processes,omitzero"`
	// FieldErrors maps a figure to the error that kept it out, for errors
	// other than "not supported" (which is simply absence).
	FieldErrors map[string]string `json:"field_errors,omitempty"`
}

// Process is one compute process using a GPU.
type Process struct {
	PID             uint32  `json:"pid"`
	Name            string  `json:"name,omitempty"`
	UsedMemoryBytes *uint64 `json:"used_memory_bytes,omitempty"`
}

// System holds the container-aware CPU, memory and disk figures.
type System struct {
	// CPUPercent is CPU time used over the last interval as a percentage of
	// CPULimitCores (the cgroup quota, or every CPU without one). Absent in
	// the first sample, which has nothing to compare with.
	CPUPercent    *float64 `json:"cpu_percent,omitempty"`
	CPULimitCores *float64 `json:"cpu_limit_cores,omitempty"`
	// CPUSource is where CPU time came from: "cgroup2", "cgroup1" or "proc".
	CPUSource        string  `json:"cpu_source,omitempty"`
	MemoryUsedBytes  *uint64 `json:"memory_used_bytes,omitempty"`
	MemoryLimitBytes *uint64 `json:"memory_limit_bytes,omitempty"`
	// MemorySource is "cgroup2", "cgroup1" or "proc" (/proc/meminfo).
	MemorySource string `json:"memory_source,omitempty"`
	Disks        []Disk `json:"disks"`
	// Errors lists what could not be read (one line each).
	Errors []string `json:"errors,omitempty"`
}

// Disk is the usage of the filesystem holding Path, as df reports it. A
// meter shows UsedBytes against UsableBytes (UsedPercent), not against
// TotalBytes: the difference is reserved for root or held by others.
type Disk struct {
	// Label is "root" for / and "workspace" for $WORKSPACE.
	Label string `json:"label"`
	Path  string `json:"path"`
	// TotalBytes is the size of the filesystem (df's 1B-blocks).
	TotalBytes uint64 `json:"total_bytes"`
	// UsedBytes is total minus free (df's Used), whoever used it.
	UsedBytes uint64 `json:"used_bytes"`
	// AvailableBytes is what this container can still write (df's Avail).
	AvailableBytes uint64 `json:"available_bytes"`
	// UsableBytes is UsedBytes + AvailableBytes, the meter's full scale.
	UsableBytes uint64 `json:"usable_bytes"`
	// UsedPercent is df's Use%: UsedBytes out of UsableBytes, rounded up.
	UsedPercent int `json:"used_percent"`
}

// Ptr returns a pointer to v; sources use it to fill optional figures.
func Ptr[T any](v T) *T { return &v }
