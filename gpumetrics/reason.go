package gpumetrics

// Reason codes: GPUReport.ReasonCode, the `reason` label of
// portal_gpu_available. Short and stable, for alert rules; the sentence a
// user reads stays in GPUReport.Reason (/api/metrics, the dashboard).
const (
	// ReasonNoLibrary: libnvidia-ml.so.1 could not be loaded.
	ReasonNoLibrary = "no_library"
	// ReasonNoDriver: the library loaded but the kernel module is not there.
	ReasonNoDriver = "no_driver"
	// ReasonDriverMismatch: library and kernel module versions differ.
	ReasonDriverMismatch = "driver_mismatch"
	// ReasonNoPermission: the process may not use the driver.
	ReasonNoPermission = "no_permission"
	// ReasonNoDevice: the driver answered but lists no GPU.
	ReasonNoDevice = "no_device"
	// ReasonNoCgo: this binary has no NVML (built without cgo, or not for Linux).
	ReasonNoCgo = "no_cgo"
	// ReasonInitFailed: any other failure to initialise or count the GPUs.
	ReasonInitFailed = "init_failed"
	// ReasonROCmMissing: rocm-smi is not on PATH.
	ReasonROCmMissing = "rocm_smi_missing"
	// ReasonROCmFailed: rocm-smi ran but failed or printed nothing usable.
	ReasonROCmFailed = "rocm_smi_failed"
	// ReasonNotSampled: no sweep has finished yet.
	ReasonNotSampled = "not_sampled"
	// ReasonSweepFailed: sweeps time out or fail before the first result.
	ReasonSweepFailed = "sweep_failed"
	// ReasonNoSource: no GPU source is configured.
	ReasonNoSource = "no_source"
)
