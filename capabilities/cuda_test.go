package capabilities

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/instanceportal/portal/cudacompat"
	"github.com/instanceportal/portal/gpumetrics"
)

// fakeFS is a Host over a map of paths: a file's content, or a directory
// when the key ends in "/" and the value lists its names, one a line.
func fakeFS(files map[string]string) *Host {
	return &Host{
		ReadFile: func(p string) ([]byte, error) {
			if v, ok := files[p]; ok {
				return []byte(v), nil
			}
			return nil, os.ErrNotExist
		},
		Exists: func(p string) bool {
			_, file := files[p]
			_, dir := files[p+"/"]
			return file || dir
		},
		ListDir: func(p string) []string { return strings.Fields(files[p+"/"]) },
	}
}

func gpus(caps ...string) *gpumetrics.Snapshot {
	s := &gpumetrics.Snapshot{}
	s.Available, s.CUDAVersion = true, "12.8"
	for i, c := range caps {
		s.GPUs = append(s.GPUs, gpumetrics.GPU{Index: i, Name: "GPU", ComputeCapability: c})
	}
	return s
}

// TestCUDAInfo holds hardware.gpu.cuda to the reference's keys: the
// driver's version and CUDA, the compute capability (a list where the
// boards differ) with the CUDA that Blackwell needs, and the
// forward-compatibility libraries with whether the boot enabled them.
func TestCUDAInfo(t *testing.T) {
	const driver = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.86.15  Release Build\n"
	compat := map[string]string{
		cudacompat.DriverVersionFile: driver,
		"/usr/local/cuda/":           "bin include compat",
		"/usr/local/cuda/compat/":    "libcuda.so libcuda.so.1 libcuda.so.575.57.08 libnvidia-ptxjitcompiler.so.1",
		"/usr/local/cuda/bin/nvcc":   "",
	}
	enabled := map[string]string{cudacompat.ConfFile: "/usr/local/cuda-12.9/compat\n"}
	for k, v := range compat {
		enabled[k] = v
	}
	tests := []struct {
		name  string
		files map[string]string
		env   map[string]string
		snap  *gpumetrics.Snapshot
		want  map[string]any // keys checked; a nil value: key absent
	}{
		{"hopper, no toolkit", map[string]string{cudacompat.DriverVersionFile: driver}, nil, gpus("9.0"),
			map[string]any{"driver_version": "570.86.15", "driver_max_cuda": "12.8", "compute_capability": "9.0",
				"min_cuda_for_wheels": nil, "forward_compat": nil, "cuda_home": nil}},
		{"blackwell needs 12.8", map[string]string{cudacompat.DriverVersionFile: driver}, nil, gpus("12.0", "12.0"),
			map[string]any{"compute_capability": "12.0", "min_cuda_for_wheels": "12.8"}},
		{"mixed boards list each once", map[string]string{cudacompat.DriverVersionFile: driver}, nil, gpus("9.0", "8.9", "10.0", "9.0"),
			map[string]any{"compute_capability": []string{"10.0", "8.9", "9.0"}, "min_cuda_for_wheels": "12.8"}},
		{"no capability read", map[string]string{cudacompat.DriverVersionFile: driver}, nil, gpus(""),
			map[string]any{"compute_capability": nil, "min_cuda_for_wheels": nil}},
		{"compat present, off", compat, nil, nil,
			map[string]any{"cuda_home": "/usr/local/cuda", "driver_max_cuda": nil, "forward_compat": map[string]any{
				"available": true, "enabled": false, "path": "/usr/local/cuda/compat",
				"compat_driver_version": "575.57.08", "host_driver_version": "570.86.15"}}},
		{"compat enabled by the boot", enabled, nil, nil,
			map[string]any{"forward_compat": map[string]any{"enabled": true}}},
		{"compat enabled by hand", compat, map[string]string{"LD_LIBRARY_PATH": "/opt/x:/usr/local/cuda/compat"}, nil,
			map[string]any{"forward_compat": map[string]any{"enabled": true}}},
		{"compat dir without the versioned library", map[string]string{cudacompat.DriverVersionFile: driver,
			"/usr/local/cuda/": "compat", "/usr/local/cuda/compat/": "libcuda.so.1"}, nil, nil,
			map[string]any{"forward_compat": nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := fakeFS(tt.files)
			info := cudaInfo(nil, h.read(cudacompat.DriverVersionFile), tt.snap, tt.env, h)
			for key, want := range tt.want {
				got, ok := info[key]
				switch w := want.(type) {
				case nil:
					if ok {
						t.Errorf("%s = %v, want it absent", key, got)
					}
				case map[string]any:
					m, _ := got.(map[string]any)
					for k, v := range w {
						if !reflect.DeepEqual(m[k], v) {
							t.Errorf("%s.%s = %#v, want %#v", key, k, m[k], v)
						}
					}
					if len(w) > 1 && !strings.Contains(m["note"].(string), cudacompat.DisableEnv) {
						t.Errorf("%s.note does not name %s: %q", key, cudacompat.DisableEnv, m["note"])
					}
				default:
					if !reflect.DeepEqual(got, want) {
						t.Errorf("%s = %#v, want %#v", key, got, want)
					}
				}
			}
		})
	}
}

// TestHardwareCUDAOnlyWithDriver: the render and CUDA blocks appear when
// the driver's file does, with the version read from it.
func TestHardwareCUDAOnlyWithDriver(t *testing.T) {
	const driver = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024\n"
	if hw := hardware(nil, false, nil, fakeFS(nil)); hw.GPU["cuda"] != nil || hw.GPU["render"] != nil {
		t.Errorf("no driver, yet %v", hw.GPU)
	}
	hw := hardware(nil, false, nil, fakeFS(map[string]string{cudacompat.DriverVersionFile: driver}))
	cuda, _ := hw.GPU["cuda"].(map[string]any)
	if cuda["driver_version"] != "550.54.14" || hw.GPU["render"] == nil {
		t.Errorf("with the driver: %v", hw.GPU)
	}
}
