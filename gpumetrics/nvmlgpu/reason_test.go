package nvmlgpu

import (
	"strings"
	"testing"
)

// TestUnavailableReasonNamesTheFix: the GPU panel of a binary built
// without cgo says so plainly and names the build command that fixes it
// (issue 13, bug 2). The old text said "built without cgo (CGO_ENABLED=0)
// or not for Linux" and named no fix.
func TestUnavailableReasonNamesTheFix(t *testing.T) {
	linux := unavailableReason("linux")
	for _, want := range []string{"built without cgo (CGO_ENABLED=0)", "has no NVML", "cannot read NVIDIA GPUs",
		"CGO_ENABLED=1 xcaddy build", "make xcaddy", "CGO_ENABLED=1 go build ./cmd/caddy"} {
		if !strings.Contains(linux, want) {
			t.Errorf("linux reason lacks %q: %s", want, linux)
		}
	}
	if strings.Contains(linux, "not for Linux") {
		t.Errorf("a Linux build must not blame the OS: %s", linux)
	}
	darwin := unavailableReason("darwin")
	if !strings.Contains(darwin, "built for darwin") || !strings.Contains(darwin, "only on Linux") || strings.Contains(darwin, "cgo") {
		t.Errorf("darwin reason: %s", darwin)
	}
}
