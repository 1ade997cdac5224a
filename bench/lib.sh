#!/usr/bin/env bash
# Shared helpers for the bench/*.sh scripts. Source it; do not run it.
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   bench_init                 # temp dir, traps that stop everything on exit
#   bench_build                # bench/bin/{caddy,caddy-stock,backend,coldstart}
#   bench_free_port            # $BENCH_PORT: a free 127.0.0.1 port, never the same twice
#   bench_start NAME CMD...    # background process, logged, stopped on exit
#   bench_run OUT CMD...       # foreground command that a signal still stops
#   bench_wait_url URL [SECONDS] [CURL ARGS...]
#   bench_median 3 1 2         # -> 2
#   bench_clean_env            # BASE_ENV: `env -u …` of what the portal reads
#   bench_option "$@"          # reads an option every script spells alike
#   bench_usage <<'EOF'        # usage: the script's options (stdin) and those
#   bench_wrk_rounds FUNC SIDE...  # ROUNDS rounds, every other one reversed
#   bench_medians RUNS MEDIANS SIDE...
#
# Everything talks to 127.0.0.1 only. Binaries land in bench/bin/ (build
# output, not tracked).

# shellcheck disable=SC2034 # variables here are used by the sourcing script

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$BENCH_DIR/.." && pwd)
BENCH_BIN=$BENCH_DIR/bin
BENCH_TMP=""
BENCH_PIDS=()
BENCH_PORTS=()
BENCH_LAST_PID=""
BENCH_PORT=""

bench_log() {
	printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2
}

bench_die() {
	bench_log "error: $*"
	exit 1
}

# bench_init creates the run's temp dir ($BENCH_TMP) and installs traps that
# stop every process started with bench_start and remove the temp dir
# (kept when BENCH_KEEP=1, for reading the logs).
bench_init() {
	BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench.XXXXXX")
	trap bench_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM HUP
}

bench_cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	bench_stop_all
	if [[ -n $BENCH_TMP && -d $BENCH_TMP ]]; then
		if [[ ${BENCH_KEEP:-0} == 1 ]]; then
			bench_log "kept $BENCH_TMP"
		else
			rm -rf -- "$BENCH_TMP"
		fi
	fi
	exit "$rc"
}

# bench_stop PID: SIGTERM, up to 5 s to exit, then SIGKILL.
bench_stop() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

bench_stop_all() {
	local pid
	for pid in "${BENCH_PIDS[@]}"; do
		bench_stop "$pid"
	done
	BENCH_PIDS=()
}

# bench_start NAME CMD... runs CMD in the background with its output in
# $BENCH_TMP/NAME.log; the pid is in $BENCH_LAST_PID and is stopped on exit.
bench_start() {
	local name=$1
	shift
	"$@" >"$BENCH_TMP/$name.log" 2>&1 &
	BENCH_LAST_PID=$!
	BENCH_PIDS+=("$BENCH_LAST_PID")
}

# bench_run OUT CMD... runs CMD to completion with stdout in OUT and stderr
# in OUT.err, and returns its status. CMD runs in the background under
# `wait` so that a signal reaches the cleanup trap at once (bash defers traps
# while a foreground command runs) and the cleanup stops CMD as well.
bench_run() {
	local out=$1 pid rc=0
	shift
	"$@" >"$out" 2>"$out.err" &
	pid=$!
	BENCH_PIDS+=("$pid")
	wait "$pid" || rc=$?
	bench_forget "$pid"
	return "$rc"
}

# bench_forget PID drops an exited process from the cleanup list, so that a
# later process reusing the number is not signalled.
bench_forget() {
	local keep=() p
	for p in "${BENCH_PIDS[@]}"; do
		[[ $p == "$1" ]] || keep+=("$p")
	done
	BENCH_PIDS=("${keep[@]}")
}

# bench_free_port sets BENCH_PORT to a 127.0.0.1 TCP port on which nothing listens,
# below the kernel's ephemeral range (so outgoing connections do not take
# it meanwhile) and not handed out before in this run. Call it in the main
# shell, not in $(...), or the "not handed out before" memory is lost:
#   bench_free_port; port=$BENCH_PORT
bench_free_port() {
	local lo=20000 hi=32000 tries p taken used
	for ((tries = 0; tries < 200; tries++)); do
		p=$((lo + RANDOM % (hi - lo)))
		used=0
		for taken in "${BENCH_PORTS[@]}"; do
			[[ $taken == "$p" ]] && used=1 && break
		done
		((used)) && continue
		# A refused connection means nothing listens there.
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			BENCH_PORTS+=("$p")
			BENCH_PORT=$p
			return 0
		fi
	done
	bench_die "no free port found in $lo-$hi"
}

# bench_wait_url URL [SECONDS] [CURL ARGS...] waits until URL answers 200.
bench_wait_url() {
	local url=$1 secs=${2:-10}
	shift 2 || shift $#
	local deadline=$((SECONDS + secs)) code
	while ((SECONDS <= deadline)); do
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$@" "$url" || true)
		[[ $code == 200 ]] && return 0
		sleep 0.05
	done
	bench_die "$url did not answer 200 within ${secs}s (last status ${code:-none}; logs in $BENCH_TMP)"
}

# bench_median NUM... prints the median (the mean of the middle two for an
# even count).
bench_median() {
	(($# > 0)) || bench_die "bench_median: no numbers"
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
		if (NR % 2) printf "%.1f\n", v[(NR + 1) / 2]
		else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# bench_ratio A B prints A/B with two decimals.
bench_ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f\n", a / b }'
}

# BENCH_GO_FLAGS are the flags of the shipped binary (the Makefile's
# RELEASE_FLAGS, which xcaddy.Dockerfile passes to xcaddy): the benchmarks
# measure what users run, and stock Caddy is built alike.
BENCH_GO_FLAGS=(-trimpath "-ldflags=-linkmode=internal -w -s" -tags "nobadger,nomysql,nopgx")

# bench_go_build OUT PKG builds PKG into bench/bin/OUT with BENCH_GO_FLAGS.
# Our own packages may be mid-edit by a colleague, so a failed build is
# retried (BENCH_BUILD_RETRIES, default 2, a minute apart) before giving up.
bench_go_build() {
	local out=$1 pkg=$2 try retries=${BENCH_BUILD_RETRIES:-2}
	mkdir -p "$BENCH_BIN"
	for ((try = 0; ; try++)); do
		if (cd "$REPO_ROOT" && go build "${BENCH_GO_FLAGS[@]}" -o "$BENCH_BIN/$out" "$pkg"); then
			return 0
		fi
		((try < retries)) || bench_die "go build $pkg failed"
		bench_log "go build $pkg failed; retrying in 60s ($((try + 1))/$retries)"
		sleep 60
	done
}

# bench_build builds our binary, stock Caddy at the version go.mod pins
# (v2.11.9), and the benchmark's own Go helpers. BENCH_NO_BUILD=1 reuses
# what bench/bin/ holds.
bench_build() {
	local b
	if [[ ${BENCH_NO_BUILD:-0} == 1 ]]; then
		for b in caddy caddy-stock backend coldstart; do
			[[ -x $BENCH_BIN/$b ]] || bench_die "BENCH_NO_BUILD=1 but $BENCH_BIN/$b is missing"
		done
		return 0
	fi
	bench_log "building bench/bin/{caddy,caddy-stock,backend,coldstart}"
	bench_go_build caddy ./cmd/caddy
	bench_go_build caddy-stock github.com/caddyserver/caddy/v2/cmd/caddy
	bench_go_build backend ./bench/backend
	bench_go_build coldstart ./bench/backend/coldstart
}

# bench_need_wrk installs Debian's wrk when it is missing and we are root.
bench_need_wrk() {
	command -v wrk >/dev/null && return 0
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
		bench_log "installing wrk"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >&2 ||
			bench_die "apt-get install wrk failed"
	else
		bench_die "wrk is missing: apt-get install wrk (as root)"
	fi
}

# bench_conditions prints one line about the machine: cores, load, CPU.
bench_conditions() {
	local model
	model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
	printf '%s cores (%s), load %s, %s\n' "$(nproc)" "${model:-unknown CPU}" \
		"$(cut -d' ' -f1-3 /proc/loadavg)" "$(go version | cut -d' ' -f3-)"
}

# bench_in_range NAME VALUE MIN MAX dies unless VALUE is an integer in range.
bench_in_range() {
	if ! [[ $2 =~ ^[0-9]+$ ]] || (($2 < $3 || $2 > $4)); then
		bench_die "$1 must be an integer in $3-$4, got '$2'"
	fi
}

# bench_pin_cpus PIN sets the CPU layout of the throughput runs in
# PROXY_PIN, LOAD_PIN (command prefixes) and PIN_NOTE. On 2 cores, giving
# the proxy a core of its own and wrk plus the backend the other makes the
# proxy the bottleneck and keeps wrk from stealing its CPU; GOMAXPROCS=1
# matches its Go scheduler to that one core. PIN=0 turns it off.
bench_pin_cpus() {
	PROXY_PIN=()
	LOAD_PIN=()
	PIN_NOTE="no CPU pinning"
	if [[ $1 == 1 ]] && (($(nproc) >= 2)) && command -v taskset >/dev/null; then
		PROXY_PIN=(taskset -c 1)
		LOAD_PIN=(taskset -c 0)
		PIN_NOTE="proxy on CPU 1 with GOMAXPROCS=1; wrk -t1 and backend (GOMAXPROCS=1) on CPU 0"
	fi
}

# bench_prepare PIN does what every load script does before its runs: wrk and
# curl present, temp dir and traps, binaries built, machine conditions noted
# in CONDITIONS_BEFORE, CPU layout chosen (bench_pin_cpus PIN).
bench_prepare() {
	bench_need_wrk
	command -v curl >/dev/null || bench_die "curl is missing"
	bench_init
	bench_build
	CONDITIONS_BEFORE=$(bench_conditions)
	bench_log "machine: $CONDITIONS_BEFORE"
	bench_pin_cpus "$1"
}

# bench_port VAR sets VAR to a free 127.0.0.1 port (see bench_free_port).
bench_port() {
	bench_free_port
	printf -v "$1" '%s' "$BENCH_PORT"
}

# bench_clean_env sets BASE_ENV to an `env` command line that unsets every
# variable the adapter, vastauth and the Go runtime read, so that the
# caller's environment cannot change the figures unseen (a VAST_TCP_PORT_*
# left over would filter the exposed ports, a GOGC would move every number).
# Prefix each side's command with "${BASE_ENV[@]}" plus its own settings.
bench_clean_env() {
	BASE_ENV=(env)
	local v
	while IFS= read -r v; do
		case $v in
		VAST_TCP_PORT_* | VAST_CONTAINERLABEL | PORTAL_* | CADDY_* | ENABLE_* | AUTH_EXCLUDE | WEB_* | \
			OPEN_BUTTON_TOKEN | INSTANCE_CERT | INSTANCE_KEY | CF_TUNNEL_TOKEN | GOMAXPROCS | GOGC | GOMEMLIMIT | GODEBUG)
			BASE_ENV+=(-u "$v")
			;;
		esac
	done < <(compgen -e)
}

# bench_wrk_defaults sets the options of the wrk scripts (auth.sh, proxy.sh)
# from the environment; bench_wrk_usage documents them and bench_wrk_check
# checks their ranges once the command line is read.
bench_wrk_defaults() {
	BENCH_WRK=1
	DURATION=${BENCH_DURATION:-10}
	CONNS=${BENCH_CONNECTIONS:-32}
	ROUNDS=${BENCH_ROUNDS:-3}
	PIN=${BENCH_PIN:-1}
}

bench_wrk_usage() {
	cat <<'EOF'
  -d SECONDS   wrk duration per throughput run (1-60, default 10; env BENCH_DURATION)
  -c CONNS     wrk connections for throughput (1-1000, default 32; env BENCH_CONNECTIONS)
  -r ROUNDS    interleaved throughput rounds (1-10, default 3; env BENCH_ROUNDS)
EOF
}

bench_wrk_check() {
	bench_in_range duration "$DURATION" 1 60
	bench_in_range connections "$CONNS" 1 1000
	bench_in_range rounds "$ROUNDS" 1 10
}

# bench_option ARGS... reads the option at the front of ARGS that every
# script spells alike, and sets BENCH_SHIFT to the words it took: -d
# SECONDS, -c CONNS, -r ROUNDS (DURATION, CONNS, ROUNDS, in the scripts
# that have them), --no-pin (PIN=0, where PIN is set), --no-build, --keep,
# -h. Anything else prints the script's usage and exits 2. The script's own
# options come first in its `case`, this last:
#   *) bench_option "$@"; shift "$BENCH_SHIFT" ;;
bench_option() {
	local var=
	BENCH_SHIFT=1
	case $1 in
	-d) var=DURATION ;;
	-c) var=CONNS ;;
	-r) var=ROUNDS ;;
	--no-pin) [[ -v PIN ]] || bench_usage_error; PIN=0 ;;
	--no-build) export BENCH_NO_BUILD=1 ;;
	--keep) export BENCH_KEEP=1 ;;
	-h | --help) usage; exit 0 ;;
	*) bench_usage_error ;;
	esac
	if [[ -n $var ]]; then
		[[ -v $var ]] || bench_usage_error
		printf -v "$var" '%s' "${2:?$1 needs a value}"
		BENCH_SHIFT=2
	fi
}

bench_usage_error() {
	usage >&2
	exit 2
}

# bench_usage prints the script's usage: the line naming it, the wrk
# options (bench_wrk_defaults), the script's own options read from stdin,
# then what bench_option reads besides -d, -c and -r (whose meaning each
# script gives). A script's usage function is
#   usage() { bench_usage <<'EOF' ...its options... EOF }
bench_usage() {
	echo "usage: bench/${0##*/} [options]"
	[[ -z ${BENCH_WRK:-} ]] || bench_wrk_usage
	cat
	if [[ -v PIN ]]; then
		cat <<'EOF'
  --no-pin     do not pin CPUs (default: the measured process on CPU 1 with
               GOMAXPROCS=1, the load on CPU 0; env BENCH_PIN=0)
EOF
	fi
	cat <<'EOF'
  --no-build   reuse bench/bin/ (env BENCH_NO_BUILD=1)
  --keep       keep the temp dir with configs and logs (env BENCH_KEEP=1)
EOF
}

# bench_wrk_rounds FUNC SIDE... runs FUNC SIDE for every side, ROUNDS times,
# in rotating order (A B C, C B A, ...) so that drift of a shared machine
# hits every side alike.
bench_wrk_rounds() {
	local func=$1 r k
	shift
	local -a sides=("$@") order
	for ((r = 1; r <= ROUNDS; r++)); do
		bench_log "round $r/$ROUNDS: wrk -t1 -c$CONNS -d${DURATION}s"
		order=("${sides[@]}")
		if ((r % 2 == 0)); then
			order=()
			for ((k = ${#sides[@]} - 1; k >= 0; k--)); do order+=("${sides[k]}"); done
		fi
		for k in "${order[@]}"; do "$func" "$k"; done
	done
}

# bench_medians RUNS MEDIANS SIDE... sets MEDIANS[SIDE] (an associative
# array) to the median of the numbers in RUNS[SIDE] (a string of them).
bench_medians() {
	local -n bench_runs_=$1 bench_meds_=$2
	local side
	local -a vals
	shift 2
	for side in "$@"; do
		read -ra vals <<<"${bench_runs_[$side]}"
		bench_meds_["$side"]=$(bench_median "${vals[@]}")
	done
}

BENCH_CLK_TCK=$(getconf CLK_TCK)

# bench_cpu_ticks PID prints the user + system CPU time of the process, in
# clock ticks (BENCH_CLK_TCK a second).
bench_cpu_ticks() {
	[[ -r /proc/$1/stat ]] || bench_die "process $1 is gone (logs: run with --keep)"
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# bench_verdict OK(0|1) prints ok or MISSED.
bench_verdict() {
	if (($1)); then echo "ok"; else echo "MISSED"; fi
}

# bench_side_env NAME sets SIDE_ENV to the clean environment BASE_ENV
# (bench_clean_env) with Caddy's autosave and data in $BENCH_TMP/NAME, and
# makes that directory's config, data, log and state.
bench_side_env() {
	mkdir -p "$BENCH_TMP/$1"/{config,data,log,state}
	SIDE_ENV=("${BASE_ENV[@]}" "XDG_CONFIG_HOME=$BENCH_TMP/$1/config" "XDG_DATA_HOME=$BENCH_TMP/$1/data")
}

# bench_portal_env NAME ADMIN appends to SIDE_ENV what lets our portal run
# beside the others: no default tunnels, its admin API on 127.0.0.1:ADMIN,
# its logs, state and instance certificate in $BENCH_TMP/NAME.
bench_portal_env() {
	SIDE_ENV+=(PORTAL_DEFAULT_TUNNELS=false "PORTAL_ADMIN_LISTEN=127.0.0.1:$2"
		"PORTAL_LOG_DIR=$BENCH_TMP/$1/log" "PORTAL_STATE_DIR=$BENCH_TMP/$1/state"
		"INSTANCE_CERT=$BENCH_TMP/$1/instance.crt" "INSTANCE_KEY=$BENCH_TMP/$1/instance.key")
}

# bench_app_yaml NAME EXTERNAL INTERNAL prints one app of a portal.yaml's
# applications: NAME on localhost, EXTERNAL proxied to INTERNAL.
bench_app_yaml() {
	printf '  %s:\n    hostname: localhost\n    external_port: %s\n    internal_port: %s\n    open_path: /\n    name: %s\n' \
		"$1" "$2" "$3" "$1"
}
