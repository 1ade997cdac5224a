//go:build nvmlgpu && linux && cgo

package nvmlgpu

// The real-GPU check of the CUDA facts the boot and the capability
// manifest rely on: the minimum-driver table of package cudacompat, held
// against what the driver itself says, and the compute capability NVML
// reports, held against nvidia-smi's. See .device-check/gpu.sh.

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/instanceportal/portal/cudacompat"
)

// TestGPUCUDATable: the newest CUDA that cudacompat derives from the
// kernel module's version must be the one the driver reports through NVML
// (cuDriverGetVersion's figure). The boot decides forward compatibility
// from the former, so a gap in the table would turn compat libraries on
// where the driver runs the toolkit natively.
func TestGPUCUDATable(t *testing.T) {
	nvidiaSmi(t) // skips without a GPU
	text, err := os.ReadFile(cudacompat.DriverVersionFile)
	if err != nil {
		t.Fatalf("NVIDIA driver loaded but %s unreadable: %v", cudacompat.DriverVersionFile, err)
	}
	driver, err := cudacompat.ParseDriverVersion(string(text))
	if err != nil {
		t.Fatalf("%s: %v\n%s", cudacompat.DriverVersionFile, err, text)
	}
	api := Real()
	if err := api.Init(); err != nil {
		t.Fatalf("NVML init: %v", err)
	}
	defer api.Shutdown()
	v, err := api.CUDADriverVersion()
	if err != nil {
		t.Fatalf("NVML CUDA driver version: %v", err)
	}
	native := cudacompat.Version{Major: v / 1000, Minor: v % 1000 / 10}
	derived, ok := cudacompat.MaxCUDA(driver)
	t.Logf("driver %s (%s): NVML says CUDA %s, the table says %s", driver, strings.TrimSpace(strings.SplitN(string(text), "\n", 2)[0]), native, derived)
	if !ok || derived != native {
		t.Errorf("driver %s runs CUDA %s natively, but cudacompat.MaxCUDA says %s (ok=%v): the table misses this driver branch", driver, native, derived, ok)
	}
}

// TestGPUComputeCapability: each board's compute capability as the
// manifest reports it (hardware.gpu.cuda.compute_capability) equals
// nvidia-smi's compute_cap.
func TestGPUComputeCapability(t *testing.T) {
	nvidiaSmi(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader").Output()
	if err != nil {
		t.Fatalf("nvidia-smi --query-gpu=compute_cap: %v", err)
	}
	want := strings.Fields(string(out))
	src := NewSource(Real())
	defer src.Close()
	rep := src.Sweep(context.Background())
	if len(rep.GPUs) != len(want) {
		t.Fatalf("NVML sees %d GPUs, nvidia-smi %d", len(rep.GPUs), len(want))
	}
	for i, g := range rep.GPUs {
		t.Logf("GPU %d: compute capability %s (nvidia-smi %s)", i, g.ComputeCapability, want[i])
		if g.ComputeCapability != want[i] {
			t.Errorf("GPU %d: compute capability %q, nvidia-smi %q", i, g.ComputeCapability, want[i])
		}
	}
}
