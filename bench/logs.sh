#!/usr/bin/env bash
# bench/logs.sh: the live log stream measured from outside, 127.0.0.1 only.
#
# Builds the portal binary as shipped and bench/logsload, then for each row
# starts a fresh `caddy run --adapter portal_yaml` on a temporary
# portal.yaml and log directory, runs logsload against it, and stops it:
#   - idle latency: one WebSocket client, one line every 5 ms, write() →
#     receipt (1000 samples), then caddy's CPU while idle with it connected;
#   - load rows, CLIENTSxRATE: CLIENTS WebSocket clients of one file that a
#     writer fills at RATE lines/s (one write(2) per line) for DURATION.
#     Every line carries its write time; every client times every line
#     (write() → receipt) and checks loss and order. Caddy's CPU over the
#     phase, and its peak RSS (a fresh process per row).
# Caddy runs on CPU 1 with GOMAXPROCS=1, logsload on CPU 0 (as
# bench/proxy.sh pins them), so caddy's core is its own and the CPU figure
# is a share of that one core.
#
# Prints the table in the README's format (Markdown). Run it on a quiet
# machine for figures that go into docs.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	bench_usage <<'EOF'
  -d SECONDS   length of each load row (1-120, default 10; env BENCH_DURATION)
  -l LOADS     load rows, CLIENTSxRATE separated by spaces
               (default "50x1000 25x10000 50x5000 50x10000 200x1000"; env BENCH_LOADS)
  -e VAR=VALUE extra environment for caddy, repeatable (e.g. GOMEMLIMIT=48MiB,
               GOGC=50) to measure a lever
  -b BINARY    measure this caddy binary instead of the one built here (an
               older build, for a before/after comparison in one sitting)
  --profile DIR
               keep caddy's GODEBUG=gctrace=1 output, a CPU profile of the
               middle of each load row and a heap profile taken at its end
               in DIR
EOF
}

DURATION=${BENCH_DURATION:-10}
LOADS=${BENCH_LOADS:-"50x1000 25x10000 50x5000 50x10000 200x1000"}
PIN=${BENCH_PIN:-1}
PROFILE=""
EXTRA_ENV=()
CADDY_BIN=
while (($#)); do
	case $1 in
	-l) LOADS=${2:?-l needs a value}; shift 2 ;;
	-e) EXTRA_ENV+=("${2:?-e needs VAR=VALUE}"); shift 2 ;;
	-b) CADDY_BIN=${2:?-b needs a binary}; shift 2 ;;
	--profile) PROFILE=${2:?--profile needs a directory}; shift 2 ;;
	*) bench_option "$@"; shift "$BENCH_SHIFT" ;;
	esac
done
DURATION=${DURATION%s} # "10s" reads as 10
bench_in_range duration "$DURATION" 1 120
for load in $LOADS; do
	[[ $load =~ ^[0-9]+x[0-9]+$ ]] || bench_die "load '$load': want CLIENTSxRATE, e.g. 50x10000"
done
for kv in "${EXTRA_ENV[@]}"; do
	[[ $kv =~ ^[A-Z_][A-Z0-9_]*=.*$ ]] || bench_die "-e '$kv': want VAR=VALUE"
done
if [[ -n $PROFILE ]]; then
	mkdir -p "$PROFILE"
	PROFILE=$(cd "$PROFILE" && pwd)
fi

bench_init
if [[ ${BENCH_NO_BUILD:-0} == 1 ]]; then
	for b in caddy logsload; do
		[[ -x $BENCH_BIN/$b ]] || bench_die "BENCH_NO_BUILD=1 but $BENCH_BIN/$b is missing"
	done
else
	bench_log "building bench/bin/{caddy,logsload}"
	bench_go_build caddy ./cmd/caddy # as shipped (BENCH_GO_FLAGS)
	bench_go_build logsload ./bench/logsload
fi
if [[ -n $CADDY_BIN ]]; then
	[[ -x $CADDY_BIN ]] || bench_die "-b $CADDY_BIN: not an executable"
else
	CADDY_BIN=$BENCH_BIN/caddy
fi
CONDITIONS_BEFORE=$(bench_conditions)
bench_log "machine: $CONDITIONS_BEFORE"
bench_pin_cpus "$PIN"
CADDY_PIN=("${PROXY_PIN[@]}")
if ((${#CADDY_PIN[@]})); then
	PIN_NOTE="caddy on CPU 1 with GOMAXPROCS=1, logsload on CPU 0 with GOMAXPROCS=1"
fi

# A clean environment for each side (bench/lib.sh).
bench_clean_env

CADDY_PID=""
# start_caddy NAME: a fresh portal with its own directories; sets CADDY_PID,
# INTERNAL, ADMIN, LOGDIR.
start_caddy() {
	local name=$1 external work=$BENCH_TMP/$1
	bench_port INTERNAL
	bench_port external
	bench_port ADMIN
	LOGDIR=$work/log
	bench_side_env "$name"
	{
		echo "applications:"
		bench_app_yaml "Instance Portal" "$external" "$INTERNAL"
	} >"$work/portal.yaml"
	bench_portal_env "$name" "$ADMIN"
	SIDE_ENV+=(GOMAXPROCS=1 ENABLE_AUTH=false "SUPERVISOR_SOCKET=$work/supervisor.sock" "${EXTRA_ENV[@]}")
	if [[ -n $PROFILE ]]; then
		SIDE_ENV+=(GODEBUG=gctrace=1)
	fi
	bench_start "caddy-$name" "${CADDY_PIN[@]}" "${SIDE_ENV[@]}" \
		"$CADDY_BIN" run --adapter portal_yaml --config "$work/portal.yaml"
	CADDY_PID=$BENCH_LAST_PID
	bench_wait_url "http://127.0.0.1:$INTERNAL/api/logs/files" 20
}

stop_caddy() {
	local name=$1
	bench_stop "$CADDY_PID"
	bench_forget "$CADDY_PID"
	if [[ -n $PROFILE ]]; then
		cp "$BENCH_TMP/caddy-$name.log" "$PROFILE/caddy-$name.log"
	fi
}

ROWS=()
# run_row NAME LOGSLOAD-ARGS...: one fresh caddy, one logsload run.
run_row() {
	local name=$1 out=$BENCH_TMP/$1.out rc=0
	shift
	start_caddy "$name"
	local extra=()
	if [[ -n $PROFILE ]]; then
		extra=(-admin "127.0.0.1:$ADMIN" -heap "$PROFILE/heap-$name.pb.gz" -cpu "$PROFILE/cpu-$name.pb.gz")
	fi
	bench_run "$out" "${LOAD_PIN[@]}" env GOMAXPROCS=1 "$BENCH_BIN/logsload" \
		-url "ws://127.0.0.1:$INTERNAL/api/logs" -dir "$LOGDIR" -pid "$CADDY_PID" "$@" "${extra[@]}" || rc=$?
	stop_caddy "$name"
	grep -v '^ROW' "$out" >&2 || true
	cat "$out.err" >&2 || true
	local row
	row=$(grep '^ROW' "$out" | head -n1 || true)
	if [[ -z $row ]]; then
		bench_log "row $name failed (status $rc); caddy's output: $BENCH_TMP/caddy-$name.log"
		ROWS+=("ROW	$name: failed (status $rc)	–	–	–	–	–	–")
		return 0
	fi
	ROWS+=("$row")
}

VERSION=$(cd "$REPO_ROOT" && go list -m github.com/caddyserver/caddy/v2 | cut -d' ' -f2)
bench_log "idle latency"
run_row latency -mode latency -samples 1000 -idle 10s
for load in $LOADS; do
	bench_log "load $load for ${DURATION}s"
	run_row "load-$load" -mode load -clients "${load%x*}" -rate "${load#*x}" -duration "${DURATION}s"
done

CONDITIONS_AFTER=$(bench_conditions)
echo
echo "Live logs, bench/logs.sh -d $DURATION: $CADDY_BIN (caddy $VERSION); ${PIN_NOTE}."
echo "Machine before: $CONDITIONS_BEFORE; after: $CONDITIONS_AFTER."
if ((${#EXTRA_ENV[@]})); then
	echo "Extra environment for caddy: ${EXTRA_ENV[*]}."
fi
echo
echo "| load (what each client receives) | p50 | p99 | max | caddy CPU (one core) | caddy peak RSS | delivery |"
echo "|---|---:|---:|---:|---:|---:|---|"
for row in "${ROWS[@]}"; do
	IFS=$'\t' read -r _ label p50 p99 maxv cpu rss delivery <<<"$row"
	echo "| $label | $p50 | $p99 | $maxv | $cpu | $rss | $delivery |"
done
echo
echo "README rows (the Speed table's columns):"
echo
for row in "${ROWS[@]}"; do
	IFS=$'\t' read -r _ label p50 p99 _ cpu rss delivery <<<"$row"
	case $label in
	idle*) echo "| log line write() → WebSocket, $label | p50 $p50, p99 $p99 | reference polls every 200 ms | | \`bench/logs.sh\` |"
		echo "| idle CPU with a log client connected | ${cpu% (*} of a core | | | \`bench/logs.sh\` |" ;;
	*) echo "| $label, every line timed write() → receipt during the load, caddy alone on one core | p50 $p50, p99 $p99; caddy $cpu of its core; peak RSS $rss; $delivery | | | \`bench/logs.sh\` |" ;;
	esac
done
if [[ -n $PROFILE ]]; then
	echo
	echo "gctrace output and heap profiles: $PROFILE (go tool pprof -sample_index=inuse_space -top FILE)"
fi
