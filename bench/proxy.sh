#!/usr/bin/env bash
# bench/proxy.sh: our binary (`caddy run --adapter portal_yaml`) side by side
# with stock Caddy v2.11.9 (a plain Caddyfile `reverse_proxy`), in front of
# the same Go backend, on 127.0.0.1 only. One run prints:
#   - cold start: process exec -> first 200 on all three app ports, median
#     of N fresh starts each, ours and stock interleaved;
#   - proxy throughput: wrk req/s through ours (compression on, the default),
#     ours with CADDY_ENABLE_COMPRESSION=false, and stock, interleaved in
#     rotating order (A B C, C B A, ...) so that drift of a shared machine
#     hits every side alike; medians and ratios ours/stock;
#   - with --baseline BIN, another build of ours (say the previous release)
#     as a fourth side of the same rotation, same config and pinning.
# See docs/bench-proxy.md for the method and the numbers.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	bench_usage <<'EOF'
  -n STARTS    cold starts per binary (1-20, default 5; env BENCH_STARTS)
  -s BYTES     backend response body size (default 1024; env BENCH_BODY)
  --baseline BIN
               another build of our binary (e.g. the previous release) as a
               fourth side, same config (env BENCH_BASELINE)
  --gzip       also run ours and stock with 'Accept-Encoding: gzip' (ours then
               compresses, stock does not): the price of compression
EOF
}

bench_wrk_defaults
STARTS=${BENCH_STARTS:-5}
BODY=${BENCH_BODY:-1024}
GZIP=0
BASELINE=${BENCH_BASELINE:-}
while (($#)); do
	case $1 in
	-n) STARTS=${2:?-n needs a value}; shift 2 ;;
	-s) BODY=${2:?-s needs a value}; shift 2 ;;
	--gzip) GZIP=1; shift ;;
	--baseline) BASELINE=${2:?--baseline needs a binary}; shift 2 ;;
	*) bench_option "$@"; shift "$BENCH_SHIFT" ;;
	esac
done

bench_wrk_check
bench_in_range starts "$STARTS" 1 20
bench_in_range "body size" "$BODY" 0 16777216
if [[ -n $BASELINE ]]; then
	[[ -x $BASELINE ]] || bench_die "--baseline $BASELINE: not an executable file"
	BASELINE=$(realpath "$BASELINE")
fi

bench_prepare "$PIN"

# --- ports, configs ---------------------------------------------------------
bench_port B1; bench_port B2; bench_port B3               # backends
bench_port O1; bench_port O2; bench_port O3; bench_port OA      # ours (compression on), admin
bench_port N1; bench_port N2; bench_port N3; bench_port NA      # ours, CADDY_ENABLE_COMPRESSION=false
bench_port S1; bench_port S2; bench_port S3; bench_port SA      # stock, admin
bench_port P1; bench_port P2; bench_port P3; bench_port PA      # --baseline build, admin

portal_yaml() { # EXT1 EXT2 EXT3
	echo "applications:"
	bench_app_yaml "App One" "$1" "$B1"
	bench_app_yaml "App Two" "$2" "$B2"
	bench_app_yaml "App Three" "$3" "$B3"
}
portal_yaml "$O1" "$O2" "$O3" >"$BENCH_TMP/ours.yaml"
portal_yaml "$N1" "$N2" "$N3" >"$BENCH_TMP/ours-nocomp.yaml"
portal_yaml "$P1" "$P2" "$P3" >"$BENCH_TMP/baseline.yaml"

# Stock Caddy as a user would write it: nothing but the admin address (so
# that two processes can run) and reverse_proxy to the same upstream names.
cat >"$BENCH_TMP/Caddyfile" <<EOF
{
	admin 127.0.0.1:$SA
}
:$S1 {
	reverse_proxy localhost:$B1
}
:$S2 {
	reverse_proxy localhost:$B2
}
:$S3 {
	reverse_proxy localhost:$B3
}
EOF

# Environment of each side: a clean slate of the variables the adapter
# reads (a VAST_TCP_PORT_* left in the caller's environment would filter
# the exposed ports), every path in the temp dir, Caddy's autosave too.
bench_clean_env
ours_env() { # NAME ADMIN COMPRESSION [AUTH TOKEN] -> array SIDE_ENV
	bench_side_env "$1"
	if [[ -n ${4:-} ]]; then
		SIDE_ENV+=(ENABLE_AUTH=true "OPEN_BUTTON_TOKEN=$4")
	else
		SIDE_ENV+=(ENABLE_AUTH=false)
	fi
	bench_portal_env "$1" "$2"
	SIDE_ENV+=("CADDY_ENABLE_COMPRESSION=$3")
}

OURS_CMD=("$BENCH_BIN/caddy" run --adapter portal_yaml --config "$BENCH_TMP/ours.yaml")
NOCOMP_CMD=("$BENCH_BIN/caddy" run --adapter portal_yaml --config "$BENCH_TMP/ours-nocomp.yaml")
STOCK_CMD=("$BENCH_BIN/caddy-stock" run --adapter caddyfile --config "$BENCH_TMP/Caddyfile")

# --- backend ------------------------------------------------------------------
bench_start backend "${LOAD_PIN[@]}" env GOMAXPROCS=1 "$BENCH_BIN/backend" -size "$BODY" \
	-listen "127.0.0.1:$B1" -listen "127.0.0.1:$B2" -listen "127.0.0.1:$B3"
for p in "$B1" "$B2" "$B3"; do bench_wait_url "http://127.0.0.1:$p/" 10; done

# --- cold start ---------------------------------------------------------------
# One start of each side in turn, after one discarded start each (page
# cache, first-run effects). No pinning here: a start uses the machine as
# it would in production.
COLD_HEADER=()
COLD_MS=""
coldstart_once() { # SIDE-NAME PORT1 PORT2 PORT3 CMD... -> COLD_MS
	local name=$1 p1=$2 p2=$3 p3=$4
	shift 4
	bench_run "$BENCH_TMP/$name-probe.out" "$BENCH_BIN/coldstart" -runs 1 -log "$BENCH_TMP/$name-start.log" \
		"${COLD_HEADER[@]}" -url "http://127.0.0.1:$p1/" -url "http://127.0.0.1:$p2/" -url "http://127.0.0.1:$p3/" \
		-- "$@" ||
		bench_die "cold start of $name failed: $(cat "$BENCH_TMP/$name-probe.out.err"); see $BENCH_TMP/$name-start.log (run with --keep)"
	read -r COLD_MS _ <"$BENCH_TMP/$name-probe.out"
}
ours_env ours "$OA" true
OURS_ENV=("${SIDE_ENV[@]}")
bench_side_env stock
STOCK_ENV=("${SIDE_ENV[@]}")
# With vastauth compiled in, also time the production default
# (ENABLE_AUTH=true), authenticated by a Bearer token: the reference spends
# seconds here hashing bcrypt passwords before Caddy starts.
AUTH_TOKEN=""
if "$BENCH_BIN/caddy" list-modules 2>/dev/null | grep -qx 'http.handlers.vastauth'; then
	AUTH_TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	ours_env ours-auth "$OA" true "$AUTH_TOKEN"
	AUTH_ENV=("${SIDE_ENV[@]}")
fi
coldstart_auth() { # -> COLD_MS of one start of ours with auth on
	COLD_HEADER=(-header "Authorization: Bearer $AUTH_TOKEN")
	coldstart_once ours-auth "$O1" "$O2" "$O3" "${AUTH_ENV[@]}" "${OURS_CMD[@]}"
	COLD_HEADER=()
}
bench_log "cold start: $STARTS starts each, interleaved"
coldstart_once ours "$O1" "$O2" "$O3" "${OURS_ENV[@]}" "${OURS_CMD[@]}"
coldstart_once stock "$S1" "$S2" "$S3" "${STOCK_ENV[@]}" "${STOCK_CMD[@]}"
START_OURS=()
START_STOCK=()
START_AUTH=()
for ((i = 0; i < STARTS; i++)); do
	coldstart_once ours "$O1" "$O2" "$O3" "${OURS_ENV[@]}" "${OURS_CMD[@]}"
	START_OURS+=("$COLD_MS")
	coldstart_once stock "$S1" "$S2" "$S3" "${STOCK_ENV[@]}" "${STOCK_CMD[@]}"
	START_STOCK+=("$COLD_MS")
	if [[ -n $AUTH_TOKEN ]]; then
		coldstart_auth
		START_AUTH+=("$COLD_MS")
	fi
done
bench_log "  ours  ms: ${START_OURS[*]}"
bench_log "  stock ms: ${START_STOCK[*]}"
START_OURS_MED=$(bench_median "${START_OURS[@]}")
START_STOCK_MED=$(bench_median "${START_STOCK[@]}")
START_AUTH_MED=""
if [[ -n $AUTH_TOKEN ]]; then
	bench_log "  ours, auth on, ms: ${START_AUTH[*]}"
	START_AUTH_MED=$(bench_median "${START_AUTH[@]}")
fi

# --- throughput ---------------------------------------------------------------
bench_log "starting the three proxies for the throughput runs"
declare -A SIDE_PID
bench_start ours "${PROXY_PIN[@]}" "${OURS_ENV[@]}" GOMAXPROCS=1 "${OURS_CMD[@]}"
SIDE_PID[ours]=$BENCH_LAST_PID
ours_env ours-nocomp "$NA" false
bench_start ours-nocomp "${PROXY_PIN[@]}" "${SIDE_ENV[@]}" GOMAXPROCS=1 "${NOCOMP_CMD[@]}"
SIDE_PID[ours-nocomp]=$BENCH_LAST_PID
bench_start stock "${PROXY_PIN[@]}" "${STOCK_ENV[@]}" GOMAXPROCS=1 "${STOCK_CMD[@]}"
SIDE_PID[stock]=$BENCH_LAST_PID
if [[ -n $BASELINE ]]; then
	ours_env baseline "$PA" true
	bench_start baseline "${PROXY_PIN[@]}" "${SIDE_ENV[@]}" GOMAXPROCS=1 \
		"$BASELINE" run --adapter portal_yaml --config "$BENCH_TMP/baseline.yaml"
	SIDE_PID[baseline]=$BENCH_LAST_PID
	bench_wait_url "http://127.0.0.1:$P1/" 15
fi
SIDE_PID[ours-gzip]=${SIDE_PID[ours]}
SIDE_PID[stock-gzip]=${SIDE_PID[stock]}
for p in "$O1" "$N1" "$S1"; do bench_wait_url "http://127.0.0.1:$p/" 15; done

# Same bytes through every side, uncompressed when the client does not ask.
for p in "$O1" "$N1" "$S1"; do
	got=$(curl -s "http://127.0.0.1:$p/" | wc -c)
	((got == BODY)) || bench_die "127.0.0.1:$p returned $got bytes, want $BODY"
done

WRK_ERRORS=0
# run_wrk PORT PID [WRK ARGS...] sets WRK_RPS, WRK_P99 and WRK_CPU (the
# proxy's CPU time per request, from /proc: unlike req/s it barely moves when
# other work shares the machine). wrk's output is appended to wrk.log.
run_wrk() {
	local port=$1 pid=$2 out=$BENCH_TMP/wrk.out t0 t1
	shift 2
	t0=$(bench_cpu_ticks "$pid")
	bench_run "$out" "${LOAD_PIN[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$@" "http://127.0.0.1:$port/" ||
		bench_die "wrk on :$port failed: $(cat "$out.err")"
	t1=$(bench_cpu_ticks "$pid")
	cat "$out" >>"$BENCH_TMP/wrk.log"
	if grep -Eq 'Non-2xx|Socket errors' "$out"; then
		WRK_ERRORS=1
		bench_log "wrk on :$port reported errors: $(grep -E 'Non-2xx|Socket errors' "$out" | tr -s ' ')"
	fi
	read -r WRK_RPS WRK_P99 WRK_CPU < <(awk -v ticks=$((t1 - t0)) -v hz="$BENCH_CLK_TCK" '
		/^Requests\/sec:/ { rps = $2 }
		/ requests in / { n = $1 }
		$1 == "99%" { p99 = $2 }
		END { printf "%s %s %.1f\n", rps, p99, (n > 0) ? ticks * 1e6 / hz / n : 0 }' "$out")
}

# Sides of the rotation: label, port, extra wrk arguments.
SIDES=("ours" "ours-nocomp" "stock")
declare -A SIDE_PORT=([ours]=$O1 [ours-nocomp]=$N1 [stock]=$S1 [ours-gzip]=$O1 [stock-gzip]=$S1 [baseline]=$P1)
declare -A SIDE_ARGS=([ours-gzip]="Accept-Encoding: gzip" [stock-gzip]="Accept-Encoding: gzip")
if [[ -n $BASELINE ]]; then SIDES+=("baseline"); fi
if ((GZIP)); then SIDES+=("ours-gzip" "stock-gzip"); fi
declare -A RPS P99 CPU

one_run() { # SIDE -> appends to RPS[SIDE], P99[SIDE], CPU[SIDE]
	local side=$1 args=()
	[[ -n ${SIDE_ARGS[$side]:-} ]] && args=(-H "${SIDE_ARGS[$side]}")
	run_wrk "${SIDE_PORT[$side]}" "${SIDE_PID[$side]}" "${args[@]}"
	RPS[$side]+="$WRK_RPS "
	P99[$side]+="$WRK_P99 "
	CPU[$side]+="$WRK_CPU "
	bench_log "  $side: $WRK_RPS req/s, p99 $WRK_P99, proxy CPU $WRK_CPU us/request"
}

bench_log "warm-up: 2s each"
for side in "${SIDES[@]}"; do
	args=()
	[[ -n ${SIDE_ARGS[$side]:-} ]] && args=(-H "${SIDE_ARGS[$side]}")
	bench_run "$BENCH_TMP/warmup.out" "${LOAD_PIN[@]}" wrk -t1 -c"$CONNS" -d2s "${args[@]}" \
		"http://127.0.0.1:${SIDE_PORT[$side]}/" || bench_die "wrk warm-up failed: $(cat "$BENCH_TMP/warmup.out.err")"
done
bench_wrk_rounds one_run "${SIDES[@]}"

declare -A MED CPUMED
bench_medians RPS MED "${SIDES[@]}"
bench_medians CPU CPUMED "${SIDES[@]}"
# p99 of the median run is not defined; report the worst p99 seen instead.
worst_p99() { # SIDE
	tr ' ' '\n' <<<"${P99[$1]}" | awk '
		NF {
			v = $1; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
			ms = v * ((u == "us") ? 0.001 : (u == "s") ? 1000 : 1)
			if (ms > max) max = ms
		}
		END { printf "%.2f ms\n", max }'
}
CONDITIONS_AFTER=$(bench_conditions)

# --- report -------------------------------------------------------------------
start_ok=$(awk -v v="$START_OURS_MED" 'BEGIN { print (v < 150) ? 1 : 0 }')
tp_ratio=$(bench_ratio "${MED[ours]}" "${MED[stock]}")
tp_ok=$(awk -v v="$tp_ratio" 'BEGIN { print (v >= 0.95) ? 1 : 0 }')

echo
echo "== proxy benchmark: ours (portal_yaml, 3 apps, ENABLE_AUTH=false) vs stock Caddy v2.11.9 reverse_proxy =="
echo "machine before: $CONDITIONS_BEFORE"
echo "machine after:  $CONDITIONS_AFTER"
echo "wrk -t1 -c$CONNS -d${DURATION}s, $ROUNDS interleaved rounds, body $BODY B; $PIN_NOTE"
echo
printf '%-48s %12s %12s %8s  %s\n' "measure" "ours" "stock" "ratio" "target"
printf '%-48s %9s ms %9s ms %8s  %s\n' "cold start, median of $STARTS" \
	"$START_OURS_MED" "$START_STOCK_MED" "$(bench_ratio "$START_OURS_MED" "$START_STOCK_MED")" \
	"ours < 150 ms: $(bench_verdict "$start_ok")"
if [[ -n $START_AUTH_MED ]]; then
	auth_ok=$(awk -v v="$START_AUTH_MED" 'BEGIN { print (v < 150) ? 1 : 0 }')
	printf '%-48s %9s ms %12s %8s  %s\n' "cold start, ENABLE_AUTH=true, median of $STARTS" \
		"$START_AUTH_MED" "-" "$(bench_ratio "$START_AUTH_MED" "$START_STOCK_MED")" \
		"ours < 150 ms: $(bench_verdict "$auth_ok")"
fi
printf '%-48s %12s %12s %8s  %s\n' "req/s, median (compression on)" \
	"${MED[ours]}" "${MED[stock]}" "$tp_ratio" ">= 0.95: $(bench_verdict "$tp_ok")"
printf '%-48s %12s %12s %8s\n' "req/s, median (CADDY_ENABLE_COMPRESSION=false)" \
	"${MED[ours-nocomp]}" "${MED[stock]}" "$(bench_ratio "${MED[ours-nocomp]}" "${MED[stock]}")"
if [[ -n $BASELINE ]]; then
	printf '%-48s %12s %12s %8s  %s\n' "req/s, median, --baseline build" \
		"${MED[baseline]}" "${MED[stock]}" "$(bench_ratio "${MED[baseline]}" "${MED[stock]}")" \
		"ours/baseline $(bench_ratio "${MED[ours]}" "${MED[baseline]}")"
fi
if ((GZIP)); then
	printf '%-48s %12s %12s %8s\n' "req/s, median, Accept-Encoding: gzip" \
		"${MED[ours-gzip]}" "${MED[stock-gzip]}" "$(bench_ratio "${MED[ours-gzip]}" "${MED[stock-gzip]}")"
fi
printf '%-48s %9s us %9s us %8s\n' "proxy CPU per request, median" \
	"${CPUMED[ours]}" "${CPUMED[stock]}" "$(bench_ratio "${CPUMED[ours]}" "${CPUMED[stock]}")"
printf '%-48s %9s us %9s us %8s\n' "proxy CPU per request, median, compression off" \
	"${CPUMED[ours-nocomp]}" "${CPUMED[stock]}" "$(bench_ratio "${CPUMED[ours-nocomp]}" "${CPUMED[stock]}")"
if [[ -n $BASELINE ]]; then
	printf '%-48s %9s us %9s us %8s\n' "proxy CPU per request, median, --baseline build" \
		"${CPUMED[baseline]}" "${CPUMED[stock]}" "$(bench_ratio "${CPUMED[baseline]}" "${CPUMED[stock]}")"
	echo "baseline build: $BASELINE"
fi
printf '%-48s %12s %12s\n' "p99 latency, worst run" "$(worst_p99 ours)" "$(worst_p99 stock)"
echo
for side in "${SIDES[@]}"; do
	printf 'runs %-12s req/s: %s  CPU us/req: %s\n' "$side" "${RPS[$side]}" "${CPU[$side]}"
done
printf 'starts ours ms: %s\nstarts stock ms: %s\n' "${START_OURS[*]}" "${START_STOCK[*]}"
if [[ -n $AUTH_TOKEN ]]; then printf 'starts ours, auth on, ms: %s\n' "${START_AUTH[*]}"; fi
if ((WRK_ERRORS)); then
	echo "WARNING: wrk reported non-2xx responses or socket errors (see the log above)"
fi
