package nvmlgpu

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/instanceportal/portal/gpumetrics"
)

// maxXIDPerSweep bounds how many pending XID events one sweep drains, so a
// flood of events cannot stretch a sweep.
const maxXIDPerSweep = 64

// DefaultEnergyEvery is how often the energy counter is read. On an H200
// (driver 580) nvmlDeviceGetTotalEnergyConsumption took 4.0 ms of a 4.8 ms
// sweep; a cumulative counter read every 10 s costs a tenth of that and
// loses nothing a rate() over it needs.
const DefaultEnergyEvery = 10 * time.Second

// DefaultRetry is how long the source waits before trying Init again after
// NVML could not be initialised (no library, no driver).
const DefaultRetry = 30 * time.Second

// Source is a gpumetrics.GPUSource over NVML. It initialises NVML lazily on
// the first Sweep (inside the collector's sweep goroutine, never in Caddy's
// Provision), re-initialises after lifecycle errors (GPU lost, driver
// reloaded), and retries a failed Init every Retry.
type Source struct {
	API   API
	Retry time.Duration
	// EnergyEvery is how often the (slow) energy counter is re-read; in
	// between, the last reading is reported. Default: DefaultEnergyEvery.
	EnergyEvery time.Duration
	Now         func() time.Time

	inited    bool
	lastTry   time.Time
	lastFail  gpumetrics.GPUReport
	xidOK     map[string]bool // UUID → XID events registered
	xidLast   map[string]uint64
	xidCount  map[string]uint64
	driverVer string
	cudaVer   string
	// unsupported remembers, per device index, the figures NVML reported
	// as not supported, so later sweeps skip those calls (a failing fan
	// query still costs 0.16 ms on an H200).
	unsupported map[int]map[string]bool
	energy      map[int]energyReading
}

type energyReading struct {
	mj uint64
	at time.Time
}

// NewSource returns a Source over api.
func NewSource(api API) *Source {
	return &Source{API: api, Retry: DefaultRetry, EnergyEvery: DefaultEnergyEvery, Now: time.Now}
}

// Sweep reads every device once.
func (s *Source) Sweep(ctx context.Context) gpumetrics.GPUReport {
	if !s.inited {
		if !s.lastTry.IsZero() && s.Now().Sub(s.lastTry) < s.Retry {
			return s.lastFail
		}
		s.lastTry = s.Now()
		if rep, ok := s.init(); !ok {
			s.lastFail = rep
			return rep
		}
	}
	rep, lost := s.sweep(ctx)
	if lost {
		// Shut down now and re-initialise on the next sweep, without
		// waiting for Retry: a reloaded driver is usually back at once.
		_ = s.API.Shutdown()
		s.inited = false
		s.lastTry = time.Time{}
	}
	return rep
}

func unavailable(code, reason string) gpumetrics.GPUReport {
	return gpumetrics.GPUReport{Available: false, Reason: reason, ReasonCode: code, GPUs: []gpumetrics.GPU{}}
}

// init initialises NVML and registers XID events. ok is false with an
// "unavailable" report when there is nothing to read.
func (s *Source) init() (gpumetrics.GPUReport, bool) {
	if err := s.API.Init(); err != nil {
		return unavailable(initReason(err)), false
	}
	n, err := s.API.DeviceCount()
	if err != nil {
		_ = s.API.Shutdown()
		return unavailable(gpumetrics.ReasonInitFailed, "NVML: counting devices: "+err.Error()), false
	}
	if n == 0 {
		_ = s.API.Shutdown()
		return unavailable(gpumetrics.ReasonNoDevice, "NVML: no NVIDIA device found"), false
	}
	s.inited = true
	s.driverVer, s.cudaVer = "", ""
	if v, err := s.API.DriverVersion(); err == nil {
		s.driverVer = v
	}
	if v, err := s.API.CUDADriverVersion(); err == nil && v > 0 {
		s.cudaVer = fmt.Sprintf("%d.%d", v/1000, v%1000/10)
	}
	// XID counts restart with each initialisation: they are "since the
	// portal started watching", which is what the gauge shows.
	s.xidOK, s.xidLast, s.xidCount = map[string]bool{}, map[string]uint64{}, map[string]uint64{}
	s.unsupported, s.energy = map[int]map[string]bool{}, map[int]energyReading{}
	for i := range n {
		d, err := s.API.Device(i)
		if err != nil {
			continue
		}
		uuid, err := d.UUID()
		if err != nil {
			continue
		}
		if err := s.API.RegisterXID(d); err == nil {
			s.xidOK[uuid] = true
		}
	}
	return gpumetrics.GPUReport{}, true
}

// initReason turns an Init failure into its reason code and the reason a
// user reads.
func initReason(err error) (code, reason string) {
	switch StatusOf(err) {
	case StatusLibraryNotFound:
		return gpumetrics.ReasonNoLibrary, "NVML library not found (libnvidia-ml.so.1): no NVIDIA driver on this machine or not mounted into the container"
	case StatusDriverNotLoaded:
		return gpumetrics.ReasonNoDriver, "NVIDIA driver not loaded: " + err.Error()
	case StatusDriverMismatch:
		return gpumetrics.ReasonDriverMismatch, "NVIDIA driver/library version mismatch (reboot or reload the driver): " + err.Error()
	case StatusNoPermission:
		return gpumetrics.ReasonNoPermission, "no permission to use the NVIDIA driver: " + err.Error()
	case StatusUnavailable:
		return gpumetrics.ReasonNoCgo, err.Error()
	}
	return gpumetrics.ReasonInitFailed, "NVML init failed: " + err.Error()
}

// sweep reads all devices. lost is true after a lifecycle error.
func (s *Source) sweep(ctx context.Context) (rep gpumetrics.GPUReport, lost bool) {
	rep = gpumetrics.GPUReport{
		Available: true, Backend: "nvml",
		DriverVersion: s.driverVer, CUDAVersion: s.cudaVer,
	}
	n, err := s.API.DeviceCount()
	if err != nil {
		return unavailable(gpumetrics.ReasonInitFailed, "NVML: counting devices: "+err.Error()), lifecycle(err)
	}
	s.drainXID()
	rep.GPUs = make([]gpumetrics.GPU, 0, n)
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		d, err := s.API.Device(i)
		if err != nil {
			if lifecycle(err) {
				lost = true
			}
			rep.GPUs = append(rep.GPUs, gpumetrics.GPU{Index: i, FieldErrors: map[string]string{"device": err.Error()}})
			continue
		}
		g, gone := s.readDevice(i, d)
		lost = lost || gone
		rep.GPUs = append(rep.GPUs, g)
	}
	return rep, lost
}

// drainXID collects pending XID events (bounded per sweep).
func (s *Source) drainXID() {
	if len(s.xidOK) == 0 {
		return
	}
	for range maxXIDPerSweep {
		ev, err := s.API.PollXID()
		if err != nil {
			return // StatusTimeout: nothing pending; anything else: try next sweep
		}
		s.xidLast[ev.UUID] = ev.XID
		s.xidCount[ev.UUID]++
	}
}

// fieldReader records per-field outcomes while reading one device.
type fieldReader struct {
	errs        map[string]string
	lost        bool
	unsupported map[string]bool
}

// want reports whether a figure is worth asking for: not one the device
// already said it does not support.
func (f *fieldReader) want(field string) bool { return !f.unsupported[field] }

// read reads one figure with get when it is wanted, and reports whether
// it was read (see ok).
func read[T any](f *fieldReader, field string, get func() (T, error)) (T, bool) {
	if !f.want(field) {
		var zero T
		return zero, false
	}
	v, err := get()
	return v, f.ok(field, err)
}

// ok reports whether a figure was read. Not supported is silent absence
// (and remembered); other errors are noted in FieldErrors.
func (f *fieldReader) ok(field string, err error) bool {
	if err == nil {
		return true
	}
	switch StatusOf(err) {
	case StatusNotSupported:
		f.unsupported[field] = true
		return false
	case StatusNoData:
		return false
	}
	if lifecycle(err) {
		f.lost = true
	}
	if f.errs == nil {
		f.errs = map[string]string{}
	}
	f.errs[field] = err.Error()
	return false
}

func (s *Source) readDevice(i int, d Device) (gpumetrics.GPU, bool) {
	if s.unsupported[i] == nil {
		s.unsupported[i] = map[string]bool{}
	}
	f := fieldReader{unsupported: s.unsupported[i]}
	g := gpumetrics.GPU{Index: i}
	if v, ok := read(&f, "name", d.Name); ok {
		g.Name = v
	}
	if v, ok := read(&f, "uuid", d.UUID); ok {
		g.UUID = v
	}
	if v, ok := read(&f, "pci_bus_id", d.PCIBusID); ok {
		g.PCIBusID = v
	}
	if f.want("compute_capability") {
		if major, minor, err := d.ComputeCapability(); f.ok("compute_capability", err) {
			g.ComputeCapability = fmt.Sprintf("%d.%d", major, minor)
		}
	}
	if v, ok := read(&f, "minor_number", d.MinorNumber); ok {
		g.Device = fmt.Sprintf("nvidia%d", v)
	}
	if f.want("utilization") {
		if gu, mu, err := d.Utilization(); f.ok("utilization", err) {
			g.UtilizationPercent, g.MemoryUtilizationPercent = gpumetrics.Ptr(float64(gu)), gpumetrics.Ptr(float64(mu))
		}
	}
	if f.want("memory") {
		if t, u, fr, err := d.Memory(); f.ok("memory", err) {
			g.MemoryTotalBytes, g.MemoryUsedBytes, g.MemoryFreeBytes = gpumetrics.Ptr(t), gpumetrics.Ptr(u), gpumetrics.Ptr(fr)
		}
	}
	if v, ok := read(&f, "temperature", d.TemperatureC); ok {
		g.TemperatureC = gpumetrics.Ptr(float64(v))
	}
	if v, ok := read(&f, "power_draw", d.PowerUsageMilliwatts); ok {
		g.PowerDrawWatts = gpumetrics.Ptr(float64(v) / 1000)
	}
	if v, ok := read(&f, "power_limit", d.PowerLimitMilliwatts); ok {
		g.PowerLimitWatts = gpumetrics.Ptr(float64(v) / 1000)
	}
	if v, ok := read(&f, "fan_speed", d.FanSpeedPercent); ok {
		g.FanSpeedPercent = gpumetrics.Ptr(float64(v))
	}
	if v, ok := read(&f, "sm_clock", d.SMClockMHz); ok {
		g.SMClockMHz = gpumetrics.Ptr(v)
	}
	if v, ok := read(&f, "memory_clock", d.MemoryClockMHz); ok {
		g.MemoryClockMHz = gpumetrics.Ptr(v)
	}
	if v, ok := read(&f, "pcie_link_gen", d.PCIeLinkGen); ok {
		g.PCIeLinkGen = gpumetrics.Ptr(v)
	}
	if v, ok := read(&f, "pcie_link_width", d.PCIeLinkWidth); ok {
		g.PCIeLinkWidth = gpumetrics.Ptr(v)
	}
	if v, ok := read(&f, "clock_event_reasons", d.ClockEventReasons); ok {
		g.ClockEventReasons = gpumetrics.Ptr(v)
		g.ClockEventReasonNames = ClockEventReasonNames(v)
	}
	if f.want("energy") {
		g.EnergyMillijoules = s.readEnergy(i, d, &f)
	}
	if f.want("ecc") {
		if c, u, err := d.ECCVolatile(); f.ok("ecc", err) {
			g.ECCCorrected, g.ECCUncorrected = gpumetrics.Ptr(c), gpumetrics.Ptr(u)
		}
	}
	readDCGMParity(&g, d, &f)
	if g.UUID != "" && s.xidOK[g.UUID] {
		g.XIDLast = gpumetrics.Ptr(s.xidLast[g.UUID])
		g.XIDCount = gpumetrics.Ptr(s.xidCount[g.UUID])
	}
	if f.want("processes") {
		if procs, err := d.ComputeProcesses(); f.ok("processes", err) {
			g.Processes = make([]gpumetrics.Process, 0, len(procs))
			for _, p := range procs {
				gp := gpumetrics.Process{PID: p.PID, UsedMemoryBytes: p.UsedMemory}
				if name, err := s.API.ProcessName(p.PID); err == nil {
					gp.Name = strings.TrimSpace(name)
				}
				g.Processes = append(g.Processes, gp)
			}
			sort.Slice(g.Processes, func(a, b int) bool { return g.Processes[a].PID < g.Processes[b].PID })
		}
	}
	g.FieldErrors = f.errs
	return g, f.lost
}

// readDCGMParity reads the figures that complete dcgm-exporter's default
// counters. Each one a board lacks (NVLink, vGPU, row remapping, a memory
// sensor) is absent, never zero.
func readDCGMParity(g *gpumetrics.GPU, d Device, f *fieldReader) {
	if v, ok := read(f, "memory_temp", d.MemoryTemperatureC); ok {
		g.MemoryTemperatureC = gpumetrics.Ptr(float64(v))
	}
	if f.want("pcie_throughput") {
		if tx, rx, err := d.PCIeThroughputKB(); f.ok("pcie_throughput", err) {
			g.PCIeTxKB, g.PCIeRxKB = gpumetrics.Ptr(uint64(tx)), gpumetrics.Ptr(uint64(rx))
		}
	}
	if v, ok := read(f, "pcie_replays", d.PCIeReplays); ok {
		g.PCIeReplays = gpumetrics.Ptr(v)
	}
	if v, ok := read(f, "encoder", d.EncoderUtilization); ok {
		g.EncoderUtilizationPercent = gpumetrics.Ptr(float64(v))
	}
	if v, ok := read(f, "decoder", d.DecoderUtilization); ok {
		g.DecoderUtilizationPercent = gpumetrics.Ptr(float64(v))
	}
	if v, ok := read(f, "nvlink", d.NVLinkDataKiB); ok {
		g.NVLinkBandwidthKiB = gpumetrics.Ptr(v)
	}
	if v, ok := read(f, "vgpu_license", d.VGPULicenseStatus); ok {
		g.VGPULicenseStatus = gpumetrics.Ptr(uint64(v))
	}
	if f.want("remapped_rows") {
		if c, u, failed, err := d.RemappedRows(); f.ok("remapped_rows", err) {
			g.RemappedRowsCorrectable, g.RemappedRowsUncorrectable, g.RowRemapFailure = gpumetrics.Ptr(c), gpumetrics.Ptr(u), gpumetrics.Ptr(failed)
		}
	}
	if v, ok := read(f, "tensor_active", d.TensorActive); ok {
		g.TensorActiveRatio = gpumetrics.Ptr(v)
	}
}

// readEnergy returns the energy counter, re-reading it at most every
// EnergyEvery (see DefaultEnergyEvery).
func (s *Source) readEnergy(i int, d Device, f *fieldReader) *uint64 {
	now := s.Now()
	if last, ok := s.energy[i]; ok && now.Sub(last.at) < s.EnergyEvery && !now.Before(last.at) {
		return gpumetrics.Ptr(last.mj)
	}
	v, err := d.TotalEnergyMillijoules()
	if !f.ok("energy", err) {
		delete(s.energy, i)
		return nil
	}
	s.energy[i] = energyReading{mj: v, at: now}
	return gpumetrics.Ptr(v)
}

// Close shuts NVML down if it was initialised.
func (s *Source) Close() error {
	if !s.inited {
		return nil
	}
	s.inited = false
	return s.API.Shutdown()
}

var _ gpumetrics.GPUSource = (*Source)(nil)
