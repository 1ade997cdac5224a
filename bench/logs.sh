#!/bin/bash
# bench/logs.sh — live log stream benchmark, 127.0.0.1 only, bounded.
#
# Builds the portal binary, runs it on a temporary portal.yaml and log
# directory, and drives it with bench/logsload (one run):
#   1. latency from write() to receipt by a WebSocket client (p50/p99),
#   2. RATE lines/s into one file with CLIENTS WebSocket clients for
#      DURATION, every line checked for loss and order, peak RSS of caddy,
#   3. caddy's CPU while idle with one client connected.
#
# Usage: bench/logs.sh [-d DURATION] [-c CLIENTS] [-r RATE]
#   (defaults 10s, 50, 10000; docs/logstream.md quotes -d 30s)
set -euo pipefail

duration=10s
clients=50
rate=10000
while getopts "d:c:r:" opt; do
	case "$opt" in
	d) duration=$OPTARG ;;
	c) clients=$OPTARG ;;
	r) rate=$OPTARG ;;
	*) echo "usage: $0 [-d DURATION] [-c CLIENTS] [-r RATE]" >&2; exit 2 ;;
	esac
done

repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
caddy_pid=""
cleanup() {
	if [[ -n "$caddy_pid" ]] && kill -0 "$caddy_pid" 2>/dev/null; then
		kill -INT "$caddy_pid" 2>/dev/null || true
		wait "$caddy_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
echo "building…" >&2
bench_go_build caddy ./cmd/caddy # as shipped (BENCH_GO_FLAGS)
bench_go_build logsload ./bench/logsload
cp "$BENCH_BIN/caddy" "$BENCH_BIN/logsload" "$work/"

internal=$(free_port)
external=$(free_port)
admin=$(free_port)
mkdir -p "$work/log" "$work/state"
cat >"$work/portal.yaml" <<YAML
applications:
  "Instance Portal":
    hostname: localhost
    external_port: $external
    internal_port: $internal
    open_path: /
    name: Instance Portal
YAML

env -i HOME="$work" PATH="$PATH" \
	PORTAL_LOG_DIR="$work/log" PORTAL_STATE_DIR="$work/state" \
	PORTAL_ADMIN_LISTEN="127.0.0.1:$admin" PORTAL_DEFAULT_TUNNELS=false \
	INSTANCE_CERT="$work/instance.crt" INSTANCE_KEY="$work/instance.key" \
	SUPERVISOR_SOCKET="$work/supervisor.sock" \
	XDG_DATA_HOME="$work/data" XDG_CONFIG_HOME="$work/config" \
	"$work/caddy" run --adapter portal_yaml --config "$work/portal.yaml" >"$work/caddy.out" 2>&1 &
caddy_pid=$!

for _ in $(seq 1 100); do
	if curl -fsS "http://127.0.0.1:$internal/api/logs/files" >/dev/null 2>&1; then
		break
	fi
	sleep 0.1
done
curl -fsS "http://127.0.0.1:$internal/api/logs/files" >/dev/null || { cat "$work/caddy.out" >&2; exit 1; }

echo "caddy $(cd "$repo" && go list -m github.com/caddyserver/caddy/v2 | cut -d' ' -f2), $(nproc) cores; duration=$duration clients=$clients rate=$rate"
timeout 600 "$work/logsload" -url "ws://127.0.0.1:$internal/api/logs" -dir "$work/log" -pid "$caddy_pid" \
	-clients "$clients" -rate "$rate" -duration "$duration"
