//go:build linux && cgo

package nvmlgpu

import (
	"encoding/binary"
	"errors"
	"math"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// Real returns the API over the machine's NVML. go-nvml dlopens
// libnvidia-ml.so.1 inside Init, so a machine without the NVIDIA driver
// gets StatusLibraryNotFound from Init, not a crash at start-up.
func Real() API { return &realAPI{} }

// Supported reports whether this build can use NVML at all.
const Supported = true

type realAPI struct {
	events nvml.EventSet
	// gpm holds each device's previous GPU-performance-monitoring sample
	// (TensorActive is a rate between two samples), by device handle.
	gpm map[nvml.Device]nvml.GpmSample
}

// result is an NVML getter's value with its return code as an error.
func result[T any](v T, r nvml.Return) (T, error) { return v, wrap(r) }

// wrap turns an NVML return code into an *Error (nil on success).
func wrap(r nvml.Return) error {
	if r == nvml.SUCCESS {
		return nil
	}
	st := StatusUnknown
	switch r {
	case nvml.ERROR_NOT_SUPPORTED, nvml.ERROR_FUNCTION_NOT_FOUND:
		st = StatusNotSupported
	case nvml.ERROR_NO_PERMISSION:
		st = StatusNoPermission
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		st = StatusLibraryNotFound
	case nvml.ERROR_DRIVER_NOT_LOADED:
		st = StatusDriverNotLoaded
	case nvml.ERROR_LIB_RM_VERSION_MISMATCH:
		st = StatusDriverMismatch
	case nvml.ERROR_UNINITIALIZED:
		st = StatusUninitialized
	case nvml.ERROR_GPU_IS_LOST:
		st = StatusGPULost
	case nvml.ERROR_TIMEOUT:
		st = StatusTimeout
	}
	return &Error{Status: st, Msg: nvml.ErrorString(r)}
}

func (a *realAPI) Init() error { return wrap(nvml.Init()) }

func (a *realAPI) Shutdown() error {
	var errs []error
	for d, smp := range a.gpm {
		errs = append(errs, wrap(smp.Free()))
		delete(a.gpm, d)
	}
	if a.events != nil {
		errs = append(errs, wrap(a.events.Free()))
		a.events = nil
	}
	errs = append(errs, wrap(nvml.Shutdown()))
	return errors.Join(errs...)
}

func (a *realAPI) DriverVersion() (string, error) {
	return result(nvml.SystemGetDriverVersion())
}

func (a *realAPI) CUDADriverVersion() (int, error) {
	return result(nvml.SystemGetCudaDriverVersion())
}

func (a *realAPI) DeviceCount() (int, error) {
	return result(nvml.DeviceGetCount())
}

func (a *realAPI) Device(i int) (Device, error) {
	d, r := nvml.DeviceGetHandleByIndex(i)
	if r != nvml.SUCCESS {
		return nil, wrap(r)
	}
	return realDevice{d, a}, nil
}

func (a *realAPI) ProcessName(pid uint32) (string, error) {
	return result(nvml.SystemGetProcessName(int(pid)))
}

func (a *realAPI) RegisterXID(d Device) error {
	rd, ok := d.(realDevice)
	if !ok {
		return &Error{Status: StatusNotSupported, Msg: "not an NVML device"}
	}
	if a.events == nil {
		set, r := nvml.EventSetCreate()
		if r != nvml.SUCCESS {
			return wrap(r)
		}
		a.events = set
	}
	return wrap(rd.d.RegisterEvents(nvml.EventTypeXidCriticalError, a.events))
}

func (a *realAPI) PollXID() (XIDEvent, error) {
	if a.events == nil {
		return XIDEvent{}, &Error{Status: StatusTimeout, Msg: "no event set"}
	}
	ev, r := a.events.Wait(0)
	if r != nvml.SUCCESS {
		return XIDEvent{}, wrap(r)
	}
	var uuid string
	if ev.Device != nil {
		uuid, _ = ev.Device.GetUUID()
	}
	return XIDEvent{UUID: uuid, XID: ev.EventData}, nil
}

type realDevice struct {
	d   nvml.Device
	api *realAPI
}

func (d realDevice) Name() (string, error) { return result(d.d.GetName()) }
func (d realDevice) UUID() (string, error) { return result(d.d.GetUUID()) }
func (d realDevice) MinorNumber() (int, error) {
	return result(d.d.GetMinorNumber())
}

func (d realDevice) ComputeCapability() (int, int, error) {
	major, minor, r := d.d.GetCudaComputeCapability()
	return major, minor, wrap(r)
}

func (d realDevice) PCIBusID() (string, error) {
	p, r := d.d.GetPciInfo()
	if r != nvml.SUCCESS {
		return "", wrap(r)
	}
	b := make([]byte, 0, len(p.BusId))
	for _, c := range p.BusId {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b), nil
}

func (d realDevice) Utilization() (uint32, uint32, error) {
	u, r := d.d.GetUtilizationRates()
	return u.Gpu, u.Memory, wrap(r)
}

func (d realDevice) Memory() (uint64, uint64, uint64, error) {
	m, r := d.d.GetMemoryInfo()
	return m.Total, m.Used, m.Free, wrap(r)
}

func (d realDevice) TemperatureC() (uint32, error) {
	return result(d.d.GetTemperature(nvml.TEMPERATURE_GPU))
}

func (d realDevice) PowerUsageMilliwatts() (uint32, error) {
	return result(d.d.GetPowerUsage())
}

func (d realDevice) PowerLimitMilliwatts() (uint32, error) {
	return result(d.d.GetEnforcedPowerLimit())
}

func (d realDevice) FanSpeedPercent() (uint32, error) {
	return result(d.d.GetFanSpeed())
}

func (d realDevice) SMClockMHz() (uint32, error) {
	return result(d.d.GetClockInfo(nvml.CLOCK_SM))
}

func (d realDevice) MemoryClockMHz() (uint32, error) {
	return result(d.d.GetClockInfo(nvml.CLOCK_MEM))
}

func (d realDevice) PCIeLinkGen() (int, error) {
	return result(d.d.GetCurrPcieLinkGeneration())
}

func (d realDevice) PCIeLinkWidth() (int, error) {
	return result(d.d.GetCurrPcieLinkWidth())
}

func (d realDevice) ClockEventReasons() (uint64, error) {
	return result(d.d.GetCurrentClocksEventReasons())
}

func (d realDevice) TotalEnergyMillijoules() (uint64, error) {
	return result(d.d.GetTotalEnergyConsumption())
}

func (d realDevice) ECCVolatile() (uint64, uint64, error) {
	c, r := d.d.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_CORRECTED, nvml.VOLATILE_ECC)
	if r != nvml.SUCCESS {
		return 0, 0, wrap(r)
	}
	u, r := d.d.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC)
	return c, u, wrap(r)
}

// notAvailable is NVML_VALUE_NOT_AVAILABLE as an unsigned long long.
const notAvailable = ^uint64(0)

func (d realDevice) ComputeProcesses() ([]ProcessInfo, error) {
	ps, r := d.d.GetComputeRunningProcesses()
	if r != nvml.SUCCESS {
		return nil, wrap(r)
	}
	out := make([]ProcessInfo, 0, len(ps))
	for _, p := range ps {
		pi := ProcessInfo{PID: p.Pid}
		if p.UsedGpuMemory != notAvailable {
			pi.UsedMemory = &p.UsedGpuMemory
		}
		out = append(out, pi)
	}
	return out, nil
}

// fieldValue reads one NVML field (nvmlDeviceGetFieldValues) as a uint64.
func (d realDevice) fieldValue(id uint32) (uint64, error) {
	v := []nvml.FieldValue{{FieldId: id}}
	if r := d.d.GetFieldValues(v); r != nvml.SUCCESS {
		return 0, wrap(r)
	}
	if r := nvml.Return(v[0].NvmlReturn); r != nvml.SUCCESS {
		return 0, wrap(r)
	}
	b := v[0].Value
	switch nvml.ValueType(v[0].ValueType) {
	case nvml.VALUE_TYPE_DOUBLE:
		f := math.Float64frombits(binary.LittleEndian.Uint64(b[:]))
		if f < 0 || math.IsNaN(f) {
			return 0, &Error{Status: StatusNoData, Msg: "negative or NaN value"}
		}
		return uint64(f), nil
	case nvml.VALUE_TYPE_UNSIGNED_INT, nvml.VALUE_TYPE_SIGNED_INT:
		return uint64(binary.LittleEndian.Uint32(b[:4])), nil
	case nvml.VALUE_TYPE_UNSIGNED_SHORT:
		return uint64(binary.LittleEndian.Uint16(b[:2])), nil
	default: // (un)signed long (long)
		return binary.LittleEndian.Uint64(b[:]), nil
	}
}

func (d realDevice) MemoryTemperatureC() (uint32, error) {
	v, err := d.fieldValue(nvml.FI_DEV_MEMORY_TEMP)
	return uint32(v), err
}

func (d realDevice) PCIeThroughputKB() (uint32, uint32, error) {
	tx, r := d.d.GetPcieThroughput(nvml.PCIE_UTIL_TX_BYTES)
	if r != nvml.SUCCESS {
		return 0, 0, wrap(r)
	}
	rx, r := d.d.GetPcieThroughput(nvml.PCIE_UTIL_RX_BYTES)
	return tx, rx, wrap(r)
}

func (d realDevice) PCIeReplays() (uint64, error) {
	v, r := d.d.GetPcieReplayCounter()
	return uint64(max(v, 0)), wrap(r)
}

func (d realDevice) EncoderUtilization() (uint32, error) {
	v, _, r := d.d.GetEncoderUtilization()
	return v, wrap(r)
}

func (d realDevice) DecoderUtilization() (uint32, error) {
	v, _, r := d.d.GetDecoderUtilization()
	return v, wrap(r)
}

// NVLinkDataKiB sums NVML's NVLink data throughput counters (TX and RX,
// all links, KiB). A board without NVLink answers NOT_SUPPORTED.
func (d realDevice) NVLinkDataKiB() (uint64, error) {
	tx, err := d.fieldValue(nvml.FI_DEV_NVLINK_THROUGHPUT_DATA_TX)
	if err != nil {
		return 0, err
	}
	rx, err := d.fieldValue(nvml.FI_DEV_NVLINK_THROUGHPUT_DATA_RX)
	return tx + rx, err
}

func (d realDevice) VGPULicenseStatus() (uint32, error) {
	mode, r := d.d.GetVirtualizationMode()
	if r != nvml.SUCCESS {
		return 0, wrap(r)
	}
	if mode != nvml.GPU_VIRTUALIZATION_MODE_VGPU {
		return 0, &Error{Status: StatusNotSupported, Msg: "not a vGPU guest"}
	}
	f, r := d.d.GetGridLicensableFeatures()
	if r != nvml.SUCCESS {
		return 0, wrap(r)
	}
	if f.IsGridLicenseSupported == 0 {
		return 0, &Error{Status: StatusNotSupported, Msg: "vGPU licensing not supported"}
	}
	for i := range min(int(f.LicensableFeaturesCount), len(f.GridLicensableFeatures)) {
		if f.GridLicensableFeatures[i].FeatureState != 0 {
			return 1, nil
		}
	}
	return 0, nil
}

func (d realDevice) RemappedRows() (uint64, uint64, bool, error) {
	c, u, _, failed, r := d.d.GetRemappedRows()
	return uint64(max(c, 0)), uint64(max(u, 0)), failed, wrap(r)
}

// TensorActive takes a GPM sample and compares it with the previous one
// of this device: NVML's "any tensor pipe" utilisation between the two,
// as a ratio. The first call only stores its sample (StatusNoData).
func (d realDevice) TensorActive() (float64, error) {
	support, r := d.d.GpmQueryDeviceSupport()
	if r != nvml.SUCCESS {
		return 0, wrap(r)
	}
	if support.IsSupportedDevice == 0 {
		return 0, &Error{Status: StatusNotSupported, Msg: "GPM not supported"}
	}
	cur, r := nvml.GpmSampleAlloc()
	if r != nvml.SUCCESS {
		return 0, wrap(r)
	}
	if r := cur.Get(d.d); r != nvml.SUCCESS {
		_ = cur.Free()
		return 0, wrap(r)
	}
	if d.api.gpm == nil {
		d.api.gpm = map[nvml.Device]nvml.GpmSample{}
	}
	prev, ok := d.api.gpm[d.d]
	d.api.gpm[d.d] = cur
	if !ok {
		return 0, &Error{Status: StatusNoData, Msg: "first GPM sample"}
	}
	defer prev.Free()
	mg := nvml.GpmMetricsGetType{NumMetrics: 1, Sample1: prev, Sample2: cur}
	mg.Metrics[0].MetricId = uint32(nvml.GPM_METRIC_ANY_TENSOR_UTIL)
	if r := nvml.GpmMetricsGet(&mg); r != nvml.SUCCESS {
		return 0, wrap(r)
	}
	if r := nvml.Return(mg.Metrics[0].NvmlReturn); r != nvml.SUCCESS {
		return 0, wrap(r)
	}
	return mg.Metrics[0].Value / 100, nil
}
