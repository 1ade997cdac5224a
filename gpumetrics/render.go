package gpumetrics

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// RenderJSON encodes a snapshot for GET /api/metrics.
func RenderJSON(s *Snapshot) []byte {
	b, err := json.Marshal(s)
	if err != nil {
		// Only NaN/Inf floats can fail here; sources never produce them,
		// but a broken answer must still be valid JSON.
		b, _ = json.Marshal(map[string]any{"sampled_at": s.SampledAt, "available": false, "reason": "encoding: " + err.Error()})
	}
	return append(b, '\n')
}

// PrometheusContentType is the text exposition format served at /metrics.
var PrometheusContentType = string(expfmt.NewFormat(expfmt.TypeTextPlain))

// dcgmLabels are dcgm-exporter's per-GPU labels, so that its Grafana
// dashboards (which group by gpu/UUID/modelName/Hostname) work unchanged:
// its template's labels, pci_bus_id (added in its 4.x releases) and the
// driver version, which its default-counters.csv declares as a label.
var dcgmLabels = []string{"gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname", "DCGM_FI_DRIVER_VERSION"}

// gpuMetric is one per-GPU series and how to read it from a GPU.
type gpuMetric struct {
	name, help string
	kind       prometheus.ValueType
	value      func(g *GPU) (float64, bool)
}

// figure is an optional figure as a sample value; false when absent.
func figure[T float64 | uint64 | uint32 | int](p *T) (float64, bool) {
	if p == nil {
		return 0, false
	}
	return float64(*p), true
}

func mib(p *uint64) (float64, bool) {
	if p == nil {
		return 0, false
	}
	return float64(*p / (1 << 20)), true
}

func boolp(p *bool) (float64, bool) {
	if p == nil {
		return 0, false
	}
	return b2f(*p), true
}

// gpuMetrics uses dcgm-exporter's names and units (MiB for framebuffer,
// W, MHz, mJ, C) so existing dashboards and alerts read them unchanged.
var gpuMetrics = []gpuMetric{
	{"DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", prometheus.GaugeValue, func(g *GPU) (float64, bool) { return figure(g.UtilizationPercent) }},
	{"DCGM_FI_DEV_MEM_COPY_UTIL", "Memory utilization (in %).", prometheus.GaugeValue, func(g *GPU) (float64, bool) { return figure(g.MemoryUtilizationPercent) }},
	{"DCGM_FI_DEV_FB_TOTAL", "Framebuffer memory total (in MiB).", prometheus.GaugeValue, func(g *GPU) (float64, bool) { return mib(g.MemoryTotalBytes) }},
	{"DCGM_FI_DEV_FB_USED", "Frame buffer memory used (in MB).", prometheus.GaugeValue, func(g *GPU) (float64, bool) { return mib(g.MemoryUsedBytes) }},
	{"DCGM_FI_DEV_FB_FREE", "Frame buffer memory free (in MB).", prometheus.GaugeValue, func(g *GPU) (float64, bool) { return mib(g.MemoryFreeBytes) }},
	{"DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", prometheus.GaugeValue, func(g *GPU) (float64, bool) { return figure(g.TemperatureC) }},
	{"DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", prometheus.GaugeValue, func(g *GPU) (float64, bool) { return figure(g.PowerDrawWatts) }},
	{"DCGM_FI_DEV_POWER_MGMT_LIMIT", "Power management limit (in W).", prometheus.GaugeValue, func(g *GPU) (float64, bool) { return figure(g.PowerLimitWatts) }},
	{"DCGM_FI_DEV_FAN_SPEED", "Fan speed (in %).", prometheus.GaugeValue, func(g *GPU) (float64, bool) { return figure(g.FanSpeedPercent) }},
	{"DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz).", prometheus.GaugeValue, func(g *GPU) (float64, bool) { return figure(g.SMClockMHz) }},
	{"DCGM_FI_DEV_MEM_CLOCK", "Memory clock frequency (in MHz).", prometheus.GaugeValue, func(g *GPU) (float64, bool) { return figure(g.MemoryClockMHz) }},
	{"DCGM_FI_DEV_PCIE_LINK_GEN", "PCIe current link generation.", prometheus.GaugeValue, func(g *GPU) (float64, bool) { return figure(g.PCIeLinkGen) }},
	{"DCGM_FI_DEV_PCIE_LINK_WIDTH", "PCIe current link width.", prometheus.GaugeValue, func(g *GPU) (float64, bool) { return figure(g.PCIeLinkWidth) }},
	{"DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", "Current clock throttle (clocks event) reasons, NVML bit mask.", prometheus.GaugeValue, func(g *GPU) (float64, bool) { return figure(g.ClockEventReasons) }},
	{"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "Total energy consumption since boot (in mJ).", prometheus.CounterValue, func(g *GPU) (float64, bool) { return figure(g.EnergyMillijoules) }},
	{"DCGM_FI_DEV_XID_ERRORS", "Value of the last XID error encountered.", prometheus.GaugeValue, func(g *GPU) (float64, bool) { return figure(g.XIDLast) }},
	{"DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "Total number of single-bit volatile ECC errors.", prometheus.CounterValue, func(g *GPU) (float64, bool) { return figure(g.ECCCorrected) }},
	{"DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "Total number of double-bit volatile ECC errors.", prometheus.CounterValue, func(g *GPU) (float64, bool) { return figure(g.ECCUncorrected) }},
	// The rest of dcgm-exporter's default counters (etc/default-counters.csv,
	// kept in testdata/dcgm-exporter/ and checked by TestDCGMDefaultCounters).
	{"DCGM_FI_DEV_MEMORY_TEMP", "Memory temperature (in C).", prometheus.GaugeValue, func(g *GPU) (float64, bool) { return figure(g.MemoryTemperatureC) }},
	{"DCGM_FI_DEV_PCIE_TX_THROUGHPUT", "Total number of bytes transmitted through PCIe TX (in KB) via NVML.", prometheus.CounterValue, func(g *GPU) (float64, bool) { return figure(g.PCIeTxKB) }},
	{"DCGM_FI_DEV_PCIE_RX_THROUGHPUT", "Total number of bytes received through PCIe RX (in KB) via NVML.", prometheus.CounterValue, func(g *GPU) (float64, bool) { return figure(g.PCIeRxKB) }},
	{"DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "Total number of PCIe retries.", prometheus.CounterValue, func(g *GPU) (float64, bool) { return figure(g.PCIeReplays) }},
	{"DCGM_FI_DEV_ENC_UTIL", "Encoder utilization (in %).", prometheus.GaugeValue, func(g *GPU) (float64, bool) { return figure(g.EncoderUtilizationPercent) }},
	{"DCGM_FI_DEV_DEC_UTIL", "Decoder utilization (in %).", prometheus.GaugeValue, func(g *GPU) (float64, bool) { return figure(g.DecoderUtilizationPercent) }},
	{"DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "Total number of NVLink bandwidth counters for all lanes", prometheus.CounterValue, func(g *GPU) (float64, bool) { return figure(g.NVLinkBandwidthKiB) }},
	{"DCGM_FI_DEV_VGPU_LICENSE_STATUS", "vGPU License status", prometheus.GaugeValue, func(g *GPU) (float64, bool) { return figure(g.VGPULicenseStatus) }},
	{"DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "Number of remapped rows for uncorrectable errors", prometheus.CounterValue, func(g *GPU) (float64, bool) { return figure(g.RemappedRowsUncorrectable) }},
	{"DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "Number of remapped rows for correctable errors", prometheus.CounterValue, func(g *GPU) (float64, bool) { return figure(g.RemappedRowsCorrectable) }},
	{"DCGM_FI_DEV_ROW_REMAP_FAILURE", "Whether remapping of rows has failed", prometheus.GaugeValue, func(g *GPU) (float64, bool) { return boolp(g.RowRemapFailure) }},
	// Not a default counter: dcgm-exporter's profiling metric, which its
	// published Grafana dashboard charts ("Tensor Core Utilization").
	{"DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "Ratio of cycles the tensor (HMMA) pipe is active (in %).", prometheus.GaugeValue, func(g *GPU) (float64, bool) { return figure(g.TensorActiveRatio) }},
	{"portal_gpu_xid_errors_total", "XID errors seen since sampling started.", prometheus.CounterValue, func(g *GPU) (float64, bool) { return figure(g.XIDCount) }},
}

var (
	gpuDescs = func() []*prometheus.Desc {
		d := make([]*prometheus.Desc, len(gpuMetrics))
		for i, m := range gpuMetrics {
			d[i] = prometheus.NewDesc(m.name, m.help, dcgmLabels, nil)
		}
		return d
	}()
	descProcMem    = prometheus.NewDesc("portal_gpu_process_memory_bytes", "GPU memory used by a compute process.", append(append([]string{}, dcgmLabels...), "pid", "process"), nil)
	descAvailable  = prometheus.NewDesc("portal_gpu_available", "1 when GPUs could be read, 0 otherwise; reason is a short code (the sentence is in /api/metrics).", []string{"backend", "reason"}, nil)
	descDriver     = prometheus.NewDesc("portal_gpu_driver_info", "GPU driver and CUDA versions (value is always 1).", []string{"backend", "driver_version", "cuda_version"}, nil)
	descStale      = prometheus.NewDesc("portal_metrics_stale", "1 when the last sweep did not finish in time and an older sample is served.", nil, nil)
	descSampledAt  = prometheus.NewDesc("portal_metrics_sampled_timestamp_seconds", "When the served sample was taken (Unix time).", nil, nil)
	descSweep      = prometheus.NewDesc("portal_metrics_sweep_seconds", "How long the sweep of the served sample took.", nil, nil)
	descCPUPct     = prometheus.NewDesc("portal_cpu_utilization_percent", "CPU used over the last interval, as a percentage of portal_cpu_limit_cores.", []string{"source"}, nil)
	descCPULimit   = prometheus.NewDesc("portal_cpu_limit_cores", "CPU cores available to the container (cgroup quota, or all CPUs).", []string{"source"}, nil)
	descMemUsed    = prometheus.NewDesc("portal_memory_used_bytes", "Memory used by the container, without inactive file cache.", []string{"source"}, nil)
	descMemLimit   = prometheus.NewDesc("portal_memory_limit_bytes", "Memory limit of the container (cgroup limit, or all memory).", []string{"source"}, nil)
	descDiskTotal  = prometheus.NewDesc("portal_disk_total_bytes", "Size of the filesystem.", []string{"label", "path"}, nil)
	descDiskUsed   = prometheus.NewDesc("portal_disk_used_bytes", "Used bytes of the filesystem.", []string{"label", "path"}, nil)
	descDiskAvail  = prometheus.NewDesc("portal_disk_available_bytes", "Bytes available to unprivileged users.", []string{"label", "path"}, nil)
	descDiskUsable = prometheus.NewDesc("portal_disk_usable_bytes", "Used plus available bytes: what this container can fill (df's Use% is used over this).", []string{"label", "path"}, nil)
)

// snapshotCollector exposes one snapshot as const metrics. It is
// "unchecked" (Describe sends nothing) because the set of series depends on
// what each board supports.
type snapshotCollector struct{ s *Snapshot }

func (snapshotCollector) Describe(chan<- *prometheus.Desc) {}

func (c snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	ch <- prometheus.MustNewConstMetric(descAvailable, prometheus.GaugeValue, b2f(s.Available), s.Backend, s.ReasonCode)
	if s.Available {
		ch <- prometheus.MustNewConstMetric(descDriver, prometheus.GaugeValue, 1, s.Backend, s.DriverVersion, s.CUDAVersion)
	}
	ch <- prometheus.MustNewConstMetric(descStale, prometheus.GaugeValue, b2f(s.Stale))
	ch <- prometheus.MustNewConstMetric(descSampledAt, prometheus.GaugeValue, float64(s.SampledAt.UnixMilli())/1e3)
	ch <- prometheus.MustNewConstMetric(descSweep, prometheus.GaugeValue, s.SweepSeconds)
	for i := range s.GPUs {
		g := &s.GPUs[i]
		labels := []string{strconv.Itoa(g.Index), g.UUID, g.PCIBusID, g.Device, g.Name, s.Hostname, s.DriverVersion}
		for j, m := range gpuMetrics {
			if v, ok := m.value(g); ok {
				ch <- prometheus.MustNewConstMetric(gpuDescs[j], m.kind, v, labels...)
			}
		}
		for _, p := range g.Processes {
			if p.UsedMemoryBytes != nil {
				ch <- prometheus.MustNewConstMetric(descProcMem, prometheus.GaugeValue, float64(*p.UsedMemoryBytes),
					append(labels[:len(labels):len(labels)], strconv.FormatUint(uint64(p.PID), 10), p.Name)...)
			}
		}
	}
	sys := &s.System
	if sys.CPUPercent != nil {
		ch <- prometheus.MustNewConstMetric(descCPUPct, prometheus.GaugeValue, *sys.CPUPercent, sys.CPUSource)
	}
	if sys.CPULimitCores != nil {
		ch <- prometheus.MustNewConstMetric(descCPULimit, prometheus.GaugeValue, *sys.CPULimitCores, sys.CPUSource)
	}
	if sys.MemoryUsedBytes != nil {
		ch <- prometheus.MustNewConstMetric(descMemUsed, prometheus.GaugeValue, float64(*sys.MemoryUsedBytes), sys.MemorySource)
	}
	if sys.MemoryLimitBytes != nil {
		ch <- prometheus.MustNewConstMetric(descMemLimit, prometheus.GaugeValue, float64(*sys.MemoryLimitBytes), sys.MemorySource)
	}
	for _, d := range sys.Disks {
		ch <- prometheus.MustNewConstMetric(descDiskTotal, prometheus.GaugeValue, float64(d.TotalBytes), d.Label, d.Path)
		ch <- prometheus.MustNewConstMetric(descDiskUsed, prometheus.GaugeValue, float64(d.UsedBytes), d.Label, d.Path)
		ch <- prometheus.MustNewConstMetric(descDiskAvail, prometheus.GaugeValue, float64(d.AvailableBytes), d.Label, d.Path)
		ch <- prometheus.MustNewConstMetric(descDiskUsable, prometheus.GaugeValue, float64(d.UsableBytes), d.Label, d.Path)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// RenderPrometheus encodes a snapshot in the Prometheus text format. The
// registry's Gather validates the families (duplicate series, label
// consistency), so a broken snapshot is reported in a comment instead of
// producing output Prometheus would reject.
func RenderPrometheus(s *Snapshot) []byte { return render(snapshotCollector{s}) }

func render(c prometheus.Collector) []byte {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	var buf bytes.Buffer
	if err != nil {
		fmt.Fprintf(&buf, "# gathering GPU metrics: %q\n", err.Error())
	}
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			fmt.Fprintf(&buf, "# encoding %s: %q\n", mf.GetName(), err.Error())
		}
	}
	return buf.Bytes()
}
