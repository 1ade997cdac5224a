//go:build !(linux && cgo)

package nvmlgpu

import "runtime"

// Real returns an API that explains why this build cannot read NVIDIA GPUs:
// go-nvml needs cgo and Linux.
func Real() API { return unavailableAPI{} }

// Supported reports whether this build can use NVML at all.
const Supported = false

var errUnavailable = &Error{Status: StatusUnavailable, Msg: unavailableReason(runtime.GOOS)}

type unavailableAPI struct{}

func (unavailableAPI) Init() error                        { return errUnavailable }
func (unavailableAPI) Shutdown() error                    { return nil }
func (unavailableAPI) DriverVersion() (string, error)     { return "", errUnavailable }
func (unavailableAPI) CUDADriverVersion() (int, error)    { return 0, errUnavailable }
func (unavailableAPI) DeviceCount() (int, error)          { return 0, errUnavailable }
func (unavailableAPI) Device(int) (Device, error)         { return nil, errUnavailable }
func (unavailableAPI) ProcessName(uint32) (string, error) { return "", errUnavailable }
func (unavailableAPI) RegisterXID(Device) error           { return errUnavailable }
func (unavailableAPI) PollXID() (XIDEvent, error)         { return XIDEvent{}, errUnavailable }
