//go:build linux && cgo

package nvmlgpu

import (
	"errors"

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
}

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
	if a.events != nil {
		errs = append(errs, wrap(a.events.Free()))
		a.events = nil
	}
	errs = append(errs, wrap(nvml.Shutdown()))
	return errors.Join(errs...)
}

func (a *realAPI) DriverVersion() (string, error) {
	v, r := nvml.SystemGetDriverVersion()
	return v, wrap(r)
}

func (a *realAPI) CUDADriverVersion() (int, error) {
	v, r := nvml.SystemGetCudaDriverVersion()
	return v, wrap(r)
}

func (a *realAPI) DeviceCount() (int, error) {
	n, r := nvml.DeviceGetCount()
	return n, wrap(r)
}

func (a *realAPI) Device(i int) (Device, error) {
	d, r := nvml.DeviceGetHandleByIndex(i)
	if r != nvml.SUCCESS {
		return nil, wrap(r)
	}
	return realDevice{d}, nil
}

func (a *realAPI) ProcessName(pid uint32) (string, error) {
	n, r := nvml.SystemGetProcessName(int(pid))
	return n, wrap(r)
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

type realDevice struct{ d nvml.Device }

func (d realDevice) Name() (string, error) { v, r := d.d.GetName(); return v, wrap(r) }
func (d realDevice) UUID() (string, error) { v, r := d.d.GetUUID(); return v, wrap(r) }
func (d realDevice) MinorNumber() (int, error) {
	v, r := d.d.GetMinorNumber()
	return v, wrap(r)
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
	v, r := d.d.GetTemperature(nvml.TEMPERATURE_GPU)
	return v, wrap(r)
}

func (d realDevice) PowerUsageMilliwatts() (uint32, error) {
	v, r := d.d.GetPowerUsage()
	return v, wrap(r)
}

func (d realDevice) PowerLimitMilliwatts() (uint32, error) {
	v, r := d.d.GetEnforcedPowerLimit()
	return v, wrap(r)
}

func (d realDevice) FanSpeedPercent() (uint32, error) {
	v, r := d.d.GetFanSpeed()
	return v, wrap(r)
}

func (d realDevice) SMClockMHz() (uint32, error) {
	v, r := d.d.GetClockInfo(nvml.CLOCK_SM)
	return v, wrap(r)
}

func (d realDevice) MemoryClockMHz() (uint32, error) {
	v, r := d.d.GetClockInfo(nvml.CLOCK_MEM)
	return v, wrap(r)
}

func (d realDevice) PCIeLinkGen() (int, error) {
	v, r := d.d.GetCurrPcieLinkGeneration()
	return v, wrap(r)
}

func (d realDevice) PCIeLinkWidth() (int, error) {
	v, r := d.d.GetCurrPcieLinkWidth()
	return v, wrap(r)
}

func (d realDevice) ClockEventReasons() (uint64, error) {
	v, r := d.d.GetCurrentClocksEventReasons()
	return v, wrap(r)
}

func (d realDevice) TotalEnergyMillijoules() (uint64, error) {
	v, r := d.d.GetTotalEnergyConsumption()
	return v, wrap(r)
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
