package nvmlgpu

// unavailableReason is the reason a build without NVML reports, in words a
// user can act on. go-nvml needs cgo (it loads libnvidia-ml.so.1 through
// C) and Linux; on Linux, a binary without NVML was built with
// CGO_ENABLED=0, which is what xcaddy does unless told otherwise. It lives
// outside the build-tagged files so that every build tests it.
func unavailableReason(goos string) string {
	if goos != "linux" {
		return "NVML unavailable: this binary was built for " + goos +
			", and the portal reads NVIDIA GPUs only on Linux"
	}
	return "NVML unavailable: this binary was built without cgo (CGO_ENABLED=0), so it has no NVML " +
		"and cannot read NVIDIA GPUs. Rebuild it with cgo: CGO_ENABLED=1 xcaddy build … " +
		"(make xcaddy sets it) or CGO_ENABLED=1 go build ./cmd/caddy"
}
