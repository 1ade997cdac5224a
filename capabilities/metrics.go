package capabilities

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/instanceportal/portal/cudacompat"
	"github.com/instanceportal/portal/gpumetrics"
)

// Metrics is a metrics snapshot in the reference's /system-metrics shape
// (portal.py _collect_metrics): the figures the manifest adds with
// include=metrics, and what the reference's /system-metrics answers.
type Metrics struct {
	RAM         *UsageMetrics `json:"ram"`
	Disk        *UsageMetrics `json:"disk"`
	Environment string        `json:"environment"`
	CPU         *CPUMetrics   `json:"cpu"`
	// Volume is $WORKSPACE, only when it is a filesystem of its own.
	Volume *UsageMetrics `json:"volume,omitempty"`
	GPU    GPUMetrics    `json:"gpu"`
}

// UsageMetrics is bytes used out of a total.
type UsageMetrics struct {
	Path    string  `json:"path,omitempty"`
	Total   uint64  `json:"total"`
	Used    uint64  `json:"used"`
	Percent float64 `json:"percent"`
}

// CPUMetrics is the CPU use, as a percentage of the cores the container
// may use (Count).
type CPUMetrics struct {
	Percent float64 `json:"percent"`
	Count   int     `json:"count"`
}

// GPUMetrics sums every GPU. Memory figures are in MB and null when the
// boards do not report them.
type GPUMetrics struct {
	Count          int               `json:"count"`
	AvgLoadPercent float64           `json:"avg_load_percent"`
	MemoryUsed     *float64          `json:"memory_used"`
	MemoryTotal    *float64          `json:"memory_total"`
	MemoryPercent  *float64          `json:"memory_percent"`
	MemoryUnit     string            `json:"memory_unit"`
	NvidiaCount    int               `json:"nvidia_count,omitempty"`
	AMDCount       int               `json:"amd_count,omitempty"`
	Errors         map[string]string `json:"errors,omitempty"`
}

const mb = 1 << 20

// MetricsFromSnapshot converts one gpumetrics snapshot to the reference's
// shape.
func MetricsFromSnapshot(s *gpumetrics.Snapshot) Metrics {
	m := Metrics{Environment: "host", GPU: GPUMetrics{MemoryUnit: "MB"}}
	if s == nil {
		return m
	}
	sys := s.System
	if strings.HasPrefix(sys.MemorySource, "cgroup") || strings.HasPrefix(sys.CPUSource, "cgroup") {
		m.Environment = "container"
	}
	if sys.MemoryUsedBytes != nil && sys.MemoryLimitBytes != nil {
		m.RAM = usage("", *sys.MemoryLimitBytes, *sys.MemoryUsedBytes)
	}
	if sys.CPULimitCores != nil {
		c := &CPUMetrics{Count: int(*sys.CPULimitCores)}
		if sys.CPUPercent != nil {
			c.Percent = math.Round(*sys.CPUPercent*10) / 10
		}
		m.CPU = c
	}
	for _, d := range sys.Disks {
		switch d.Label {
		case "root":
			m.Disk = usage("", d.UsableBytes, d.UsedBytes)
		case "workspace":
			m.Volume = usage(d.Path, d.UsableBytes, d.UsedBytes)
		}
	}
	g := &m.GPU
	if !s.Available || len(s.GPUs) == 0 {
		zero := 0.0
		g.MemoryUsed, g.MemoryTotal, g.MemoryPercent = &zero, &zero, &zero
		if s.Reason != "" {
			g.Errors = map[string]string{"gpu": s.Reason}
		}
		return m
	}
	g.Count = len(s.GPUs)
	if s.Backend == "rocm-smi" {
		g.AMDCount = g.Count
	} else {
		g.NvidiaCount = g.Count
	}
	var load float64
	var loads int
	var used, total float64
	haveMem := false
	for _, gpu := range s.GPUs {
		if gpu.UtilizationPercent != nil {
			load += *gpu.UtilizationPercent
			loads++
		}
		if gpu.MemoryUsedBytes != nil && gpu.MemoryTotalBytes != nil {
			used += float64(*gpu.MemoryUsedBytes) / mb
			total += float64(*gpu.MemoryTotalBytes) / mb
			haveMem = true
		}
	}
	if loads > 0 {
		g.AvgLoadPercent = load / float64(loads)
	}
	if haveMem {
		pct := 0.0
		if total > 0 {
			pct = used / total * 100
		}
		g.MemoryUsed, g.MemoryTotal, g.MemoryPercent = &used, &total, &pct
	}
	return m
}

func usage(path string, total, used uint64) *UsageMetrics {
	u := &UsageMetrics{Path: path, Total: total, Used: used}
	if total > 0 {
		u.Percent = math.Round(float64(used)/float64(total)*1000) / 10
	}
	return u
}

// gpuSummary is the reference's one-line GPU description: "2× NVIDIA
// H100 80GB HBM3", "No GPU detected", or "unknown" without a sample.
func gpuSummary(s *gpumetrics.Snapshot) string {
	if s == nil {
		return "unknown"
	}
	if !s.Available || len(s.GPUs) == 0 {
		return "No GPU detected"
	}
	count := map[string]int{}
	var order []string
	for _, g := range s.GPUs {
		name := g.Name
		if name == "" {
			name = "GPU"
		}
		if count[name] == 0 {
			order = append(order, name)
		}
		count[name]++
	}
	parts := make([]string, 0, len(order))
	for _, name := range order {
		if count[name] > 1 {
			parts = append(parts, fmt.Sprintf("%d× %s", count[name], name))
		} else {
			parts = append(parts, name)
		}
	}
	return strings.Join(parts, ", ")
}

// cudaComponents maps each CUDA component to the library that proves it.
var cudaComponents = map[string]string{
	"cudart": "libcudart.so", "nvrtc": "libnvrtc.so", "cublas": "libcublas.so", "cudnn": "libcudnn.so",
	"cufft": "libcufft.so", "cusparse": "libcusparse.so", "cusolver": "libcusolver.so", "curand": "libcurand.so",
	"nccl": "libnccl.so", "npp": "libnppc.so", "nvjpeg": "libnvjpeg.so",
}

// hardware is the hardware block: the GPU summary, the render and CUDA
// facts when an NVIDIA driver is loaded, and the metrics when asked.
func hardware(s *gpumetrics.Snapshot, includeMetrics bool, env map[string]string, h *Host) Hardware {
	gpu := map[string]any{"summary": gpuSummary(s)}
	// One read of the driver's file: its presence says a driver is loaded
	// (checked apart only when the read fails) and its text the version.
	if driver := h.read(cudacompat.DriverVersionFile); driver != "" || h.exists(cudacompat.DriverVersionFile) {
		libs := h.sharedLibs()
		gpu["render"] = renderCaps(libs, h)
		gpu["cuda"] = cudaInfo(libs, driver, s, env, h)
	}
	hw := Hardware{GPU: gpu}
	if !includeMetrics || s == nil {
		return hw
	}
	m := MetricsFromSnapshot(s)
	var g map[string]any
	if b, err := json.Marshal(m.GPU); err == nil && json.Unmarshal(b, &g) == nil {
		for k, v := range g {
			gpu[k] = v
		}
	}
	hw.CPU, hw.RAM, hw.Disk, hw.Volume = m.CPU, m.RAM, m.Disk, m.Volume
	return hw
}

// renderCaps says whether the NVIDIA graphics libraries are present: some
// hosts install the compute driver only.
func renderCaps(libs map[string]bool, h *Host) map[string]any {
	vulkan := false
	for _, dir := range []string{"/etc/vulkan/icd.d", "/usr/share/vulkan/icd.d"} {
		for _, name := range h.list(dir) {
			if strings.Contains(strings.ToLower(name), "nvidia") && strings.HasSuffix(name, ".json") {
				vulkan = true
			}
		}
	}
	caps := map[string]any{"gl": libs["libGLX_nvidia.so.0"], "optix": libs["libnvoptix.so.1"], "vulkan": vulkan}
	if !libs["libGLX_nvidia.so.0"] || !libs["libnvoptix.so.1"] || !vulkan {
		caps["note"] = "Some NVIDIA graphics libraries (OpenGL, OptiX or Vulkan) are missing: the host " +
			"installed the compute driver only. CUDA works; rendering on the GPU may not."
	}
	return caps
}

// cudaInfo is the CUDA block: the driver's version and the highest CUDA it
// supports, and which CUDA components the loader can find.
func cudaInfo(libs map[string]bool, driver string, s *gpumetrics.Snapshot, env map[string]string, h *Host) map[string]any {
	home := env["CUDA_HOME"]
	if home == "" {
		home = "/usr/local/cuda"
	}
	comps := map[string]any{
		"nvcc":        h.exists(home+"/bin/nvcc") || h.onPath("nvcc", env["PATH"]),
		"dev_headers": h.exists(home + "/include/cuda_runtime.h"),
	}
	names := make([]string, 0, len(cudaComponents))
	for name := range cudaComponents {
		names = append(names, name)
	}
	sort.Strings(names)
	var present []string
	for _, name := range names {
		ok := false
		for lib := range libs {
			if strings.HasPrefix(lib, cudaComponents[name]) {
				ok = true
				break
			}
		}
		comps[name] = ok
		if ok {
			present = append(present, name)
		}
	}
	info := map[string]any{"driver_version": nil, "components": comps}
	if v, err := cudacompat.DriverVersionText(driver); err == nil {
		info["driver_version"] = v
	}
	if s != nil && s.CUDAVersion != "" {
		info["driver_max_cuda"] = s.CUDAVersion
	}
	if h.exists(home) {
		info["cuda_home"] = home
		if v := cudaVersionFromPath(h.resolve(home)); v != "" {
			info["installed_version"] = v
		}
	}
	if fc := forwardCompat(home, info["driver_version"], env, h); fc != nil {
		info["forward_compat"] = fc
	}
	if caps := computeCapabilities(s); len(caps) > 0 {
		if len(caps) == 1 {
			info["compute_capability"] = caps[0]
		} else {
			info["compute_capability"] = caps
		}
		if v := minCUDAForWheels(caps); v != "" {
			info["min_cuda_for_wheels"] = v
		}
	}
	note := "The host's driver provides CUDA. "
	if len(present) > 0 {
		note += "Installed CUDA components: " + strings.Join(present, ", ") + "; check `components` before assuming a library exists. "
	} else {
		note += "No CUDA libraries are installed; framework wheels that bundle their own CUDA runtime work as they are. "
	}
	note += "Any CUDA 12.x build runs on a driver whose driver_max_cuda is 12.0 or newer (13.x on 13.0 or newer). " +
		"What binds is the GPU's architecture: compute_capability 10.0 or above (Blackwell) needs builds for " +
		"CUDA 12.8 or newer (min_cuda_for_wheels). Never install an NVIDIA driver " +
		"package inside the container: it must match the host's."
	info["note"] = note
	return info
}

// computeCapabilities lists the boards' distinct compute capabilities,
// sorted ("8.9", "9.0").
func computeCapabilities(s *gpumetrics.Snapshot) []string {
	if s == nil {
		return nil
	}
	seen := map[string]bool{}
	var caps []string
	for _, g := range s.GPUs {
		if g.ComputeCapability != "" && !seen[g.ComputeCapability] {
			seen[g.ComputeCapability] = true
			caps = append(caps, g.ComputeCapability)
		}
	}
	sort.Strings(caps)
	return caps
}

// minCUDAForWheels is the oldest CUDA whose builds carry kernels for every
// board: Blackwell (compute capability 10.0 and above) arrived with CUDA
// 12.8, so older framework wheels install but fail with "no kernel image is
// available". "" when any current build serves.
func minCUDAForWheels(caps []string) string {
	for _, c := range caps {
		if major, _, ok := strings.Cut(c, "."); ok {
			if n, err := strconv.Atoi(major); err == nil && n >= 10 {
				return "12.8"
			}
		}
	}
	return ""
}

// compatLib matches the versioned driver library of a cuda-compat package.
var compatLib = regexp.MustCompile(`^libcuda\.so\.(\d+\.\d+\.\d+)$`)

// forwardCompat describes CUDA_HOME/compat, the forward-compatibility
// driver libraries, when the image carries them: whether the boot enabled
// them (cudacompat writes the loader's conf file) and which driver they
// stand in for. nil without them.
func forwardCompat(home string, hostDriver any, env map[string]string, h *Host) map[string]any {
	dir := home + "/compat"
	var version string
	names := h.list(dir)
	sort.Strings(names)
	for _, name := range names {
		if m := compatLib.FindStringSubmatch(name); m != nil {
			version = m[1]
			break
		}
	}
	if version == "" {
		return nil
	}
	enabled := strings.Contains(h.read(cudacompat.ConfFile), "compat") ||
		slices.Contains(strings.Split(env["LD_LIBRARY_PATH"], ":"), dir)
	return map[string]any{
		"available": true, "enabled": enabled, "path": dir,
		"compat_driver_version": version, "host_driver_version": hostDriver,
		"note": "Forward-compatibility libraries let a newer CUDA major version run on an older host driver, " +
			"on datacenter GPUs only. The boot enables them when the image's newest toolkit needs them and they " +
			"initialise on this GPU, and leaves them off otherwise (" + cudacompat.DisableEnv + "=true opts out): " +
			"`enabled` is the state now. Do not switch them on by hand.",
	}
}

// cudaVersionFromPath reads "12.9" from "/usr/local/cuda-12.9".
func cudaVersionFromPath(p string) string {
	i := strings.LastIndex(p, "cuda-")
	if i < 0 {
		return ""
	}
	v := p[i+len("cuda-"):]
	end := 0
	for end < len(v) && (v[end] == '.' || ('0' <= v[end] && v[end] <= '9')) {
		end++
	}
	v = strings.Trim(v[:end], ".")
	if v == "" {
		return ""
	}
	return v
}
