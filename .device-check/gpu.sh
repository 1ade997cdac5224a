#!/usr/bin/env bash
# GPU check for gpu_metrics (issue 5), telemetry (issue 23) and the CUDA
# facts of the capability manifest and the boot (issue 17/19).
#
#   .device-check/gpu.sh build   on the build machine (Go toolchain, no GPU):
#                                compiles the nvmlgpu test binary with the
#                                real-GPU test into .device/ (git-ignored),
#                                copies this script there, and checks that
#                                the binary skips cleanly without a GPU.
#   .device/gpu.sh run           on the GPU machine (no Go toolchain), from
#                                the repository root: runs the check and
#                                the benchmarks, writing gpu.log to $OUT.
set -euo pipefail

mode=${1:-}
case "$mode" in
build)
	root=$(git rev-parse --show-toplevel)
	cd "$root"
	mkdir -p .device
	go test -c -tags nvmlgpu -o .device/gpumetrics.test ./gpumetrics/nvmlgpu 2>/dev/null
	CGO_ENABLED=1 CGO_CFLAGS=-Wno-deprecated-declarations go build -trimpath -ldflags '-s -w' -o .device/caddy ./cmd/caddy
	cp .device-check/gpu.sh .device/gpu.sh
	./.device/gpumetrics.test -test.run GPU -test.bench GPU -test.benchtime 1x >/dev/null
	# The binary alone is near the device tool's 64 MiB carry limit: it
	# travels gzipped and run unpacks it.
	gzip -f .device/caddy
	echo "built .device/{gpumetrics.test,caddy.gz}; carry .device and run on the GPU machine: .device/gpu.sh run"
	;;
run)
	out=${OUT:-.}
	cd "$(dirname "$0")"
	if [[ -f caddy.gz ]]; then gunzip -f caddy.gz; fi
	{
		echo "== host"
		uname -m
		ldd --version 2>&1 | head -n 1 || true
		echo "== nvidia-smi"
		nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader,nounits
		echo "== go test (GPU check + benchmarks)"
		timeout 240 ./gpumetrics.test -test.v -test.run GPU -test.bench 'GPUSweep|GPUNvidiaSmi' \
			-test.benchtime 200x -test.benchmem -test.count 1
		echo "== the real portal's /metrics (issue 23: every new field)"
		tmp=$(mktemp -d)
		echo 'applications: {"Instance Portal": {hostname: localhost, external_port: 21111, internal_port: 21112, open_path: /, name: Instance Portal}}' >"$tmp/portal.yaml"
		PORTAL_STATE_DIR=$tmp PORTAL_LOG_DIR=$tmp WORKSPACE=$tmp XDG_DATA_HOME=$tmp XDG_CONFIG_HOME=$tmp \
			./caddy run --adapter portal_yaml --config "$tmp/portal.yaml" >"$tmp/caddy.log" 2>&1 &
		caddy_pid=$!
		for _ in $(seq 50); do curl -fsS -o /dev/null http://127.0.0.1:21112/metrics 2>/dev/null && break; sleep 0.2; done
		GPU_CHECK_METRICS_URL=http://127.0.0.1:21112/metrics timeout 60 ./gpumetrics.test -test.v -test.run GPUMetricsEndpoint || true
		echo "== the capability manifest's CUDA block (compute capability, forward compatibility)"
		curl -fsS http://127.0.0.1:21112/capabilities >"$out/capabilities.json" || echo "no /capabilities"
		grep -o '"cuda":{.*"note"' "$out/capabilities.json" | head -c 2000 || true
		echo
		echo "== caddy portal cuda-compat --dry-run (the boot's decision on this host)"
		ls -d /usr/local/cuda* 2>&1 || true
		./caddy portal cuda-compat --dry-run || true
		kill "$caddy_pid" || true
		wait "$caddy_pid" 2>/dev/null || true
		echo "== per-call NVML cost on GPU 0"
		timeout 120 ./gpumetrics.test -test.run '^$' -test.bench GPUField -test.benchtime 200x
	} 2>&1 | tee "$out/gpu.log"
	;;
*)
	echo "usage: $0 build|run" >&2
	exit 2
	;;
esac
