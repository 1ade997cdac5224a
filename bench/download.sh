#!/usr/bin/env bash
# bench/download.sh: the provisioner's downloader (package download, through
# bench/downloadload) side by side with curl and wget, on the same files
# from the same Go file server on 127.0.0.1, in one run:
#   1. one big file (2 GiB): wall time of each client, rounds interleaved in
#      rotating order; medians and ours/curl throughput (target >= 0.9);
#   2. 50 files of 20 MiB: ours with its default pool (5) against wget and
#      curl fetching them one after the other (target: ours < half of
#      wget's time), once from the plain server and once with each
#      connection capped (-R, what a remote host's per-connection rate looks
#      like; loopback has no latency for parallelism to hide);
#   3. resume: ours killed once half the big file is on disk, then run
#      again: the bytes the server sends the second time, as a share of the
#      file (target < 60 %);
#   4. peak RSS (VmHWM) of ours while downloading the big file (target < 64
#      MiB), beside curl's and wget's (GNU time's maximum RSS).
# The files live in a temp dir, deleted at the end. See docs/bench-download.md.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	bench_usage <<'EOF'
  -s MIB       size of the big file in MiB (64-8192, default 2048; env BENCH_BIG_MIB)
  -r ROUNDS    interleaved rounds on the big file (1-10, default 3; env BENCH_ROUNDS)
  -n FILES     number of small files (1-200, default 50; env BENCH_FILES)
  -m MIB       size of each small file in MiB (1-200, default 20; env BENCH_SMALL_MIB)
  -R MIBPS     per-connection cap of the capped server, MiB/s (1-1000, default 40; env BENCH_CAP_MIBPS)
EOF
}

BIG_MIB=${BENCH_BIG_MIB:-2048}
ROUNDS=${BENCH_ROUNDS:-3}
FILES=${BENCH_FILES:-50}
SMALL_MIB=${BENCH_SMALL_MIB:-20}
CAP_MIBPS=${BENCH_CAP_MIBPS:-40}
while (($#)); do
	case $1 in
	-s) BIG_MIB=${2:?-s needs a value}; shift 2 ;;
	-n) FILES=${2:?-n needs a value}; shift 2 ;;
	-m) SMALL_MIB=${2:?-m needs a value}; shift 2 ;;
	-R) CAP_MIBPS=${2:?-R needs a value}; shift 2 ;;
	*) bench_option "$@"; shift "$BENCH_SHIFT" ;;
	esac
done
bench_in_range "-s" "$BIG_MIB" 64 8192
bench_in_range "-r" "$ROUNDS" 1 10
bench_in_range "-n" "$FILES" 1 200
bench_in_range "-m" "$SMALL_MIB" 1 200
bench_in_range "-R" "$CAP_MIBPS" 1 1000

# 1. Tools, temp dir, the helper.
prepare() {
	local t
	for t in curl wget /usr/bin/time; do
		command -v "$t" >/dev/null || bench_die "$t is missing"
	done
	bench_init
	if [[ ${BENCH_NO_BUILD:-0} == 1 ]]; then
		[[ -x $BENCH_BIN/downloadload ]] || bench_die "BENCH_NO_BUILD=1 but $BENCH_BIN/downloadload is missing"
	else
		bench_log "building bench/bin/downloadload"
		bench_go_build downloadload ./bench/downloadload
	fi
	CONDITIONS_BEFORE=$(bench_conditions)
	bench_log "machine: $CONDITIONS_BEFORE"
}

# 2. The files: one big, one small one linked FILES times.
make_files() {
	SRV=$BENCH_TMP/srv
	OUT=$BENCH_TMP/out
	mkdir -p "$SRV/small" "$OUT"
	bench_log "writing a ${BIG_MIB} MiB file and ${FILES} x ${SMALL_MIB} MiB"
	head -c "$((BIG_MIB << 20))" /dev/urandom >"$SRV/big.bin"
	head -c "$((SMALL_MIB << 20))" /dev/urandom >"$SRV/small/f0.bin"
	local i
	for ((i = 1; i < FILES; i++)); do
		ln "$SRV/small/f0.bin" "$SRV/small/f$i.bin"
	done
	BIG_BYTES=$((BIG_MIB << 20))
}

# 3. Two servers over the same directory: plain, and capped per connection.
start_servers() {
	bench_free_port
	PORT=$BENCH_PORT
	bench_start server "$BENCH_BIN/downloadload" serve -addr "127.0.0.1:$PORT" -dir "$SRV"
	bench_free_port
	CAP_PORT=$BENCH_PORT
	bench_start server-capped "$BENCH_BIN/downloadload" serve -addr "127.0.0.1:$CAP_PORT" -dir "$SRV" -rate "$((CAP_MIBPS << 20))"
	bench_wait_url "http://127.0.0.1:$PORT/__bytes" 10
	bench_wait_url "http://127.0.0.1:$CAP_PORT/__bytes" 10
}

# timed OUT CMD... runs CMD under GNU time; sets T_S (wall seconds) and
# RSS_KIB (maximum resident set). A sync first, not timed: ours fsyncs
# what it wrote, and without it would also wait behind the writeback of
# the test files and of the copies before it.
timed() {
	local out=$1
	shift
	sync
	bench_run "$out" /usr/bin/time -f '%e %M' -o "$out.time" "$@" || bench_die "$* failed: $(tail -3 "$out.err")"
	read -r T_S RSS_KIB <"$out.time"
}

# big_one TOOL: one download of the big file by TOOL, then the copy is
# deleted.
big_one() {
	local url="http://127.0.0.1:$PORT/big.bin" dest="$OUT/big.bin"
	case $1 in
	ours) timed "$BENCH_TMP/big-ours" "$BENCH_BIN/downloadload" fetch "$url" "$dest" ;;
	curl) timed "$BENCH_TMP/big-curl" curl -sSf -o "$dest" "$url" ;;
	wget) timed "$BENCH_TMP/big-wget" wget -q -O "$dest" "$url" ;;
	esac
	[[ $(stat -c %s "$dest") == "$BIG_BYTES" ]] || bench_die "$1: wrong size"
	rm -f -- "$dest"
}

bench_big() {
	local r tool order
	declare -gA BIG_T=() BIG_RSS=()
	local -a tools=(ours curl wget)
	# A warm-up copy, not counted: the first 2 GiB written after the test
	# files took 4.0 to 6.7 s where the same client then took 2.3 to 2.9 s,
	# and round 1 always starts with ours.
	big_one curl
	bench_log "big file, warm-up (not counted): curl ${T_S}s"
	for ((r = 0; r < ROUNDS; r++)); do
		if ((r % 2)); then order=(wget curl ours); else order=("${tools[@]}"); fi
		for tool in "${order[@]}"; do
			big_one "$tool"
			BIG_T[$tool]+="$T_S "
			BIG_RSS[$tool]+="$RSS_KIB "
			bench_log "big file, round $((r + 1)): $tool ${T_S}s, max RSS ${RSS_KIB} KiB"
		done
	done
}

# many PORT TOOL: all small files by TOOL; prints wall seconds.
many() {
	local port=$1 tool=$2 i
	local -a pairs=() urls=()
	rm -rf -- "$OUT/small"
	mkdir -p "$OUT/small"
	for ((i = 0; i < FILES; i++)); do
		pairs+=("http://127.0.0.1:$port/small/f$i.bin" "$OUT/small/f$i.bin")
		urls+=("http://127.0.0.1:$port/small/f$i.bin")
	done
	case $tool in
	ours) timed "$BENCH_TMP/many-ours" "$BENCH_BIN/downloadload" fetch "${pairs[@]}" ;;
	wget) timed "$BENCH_TMP/many-wget" wget -q -P "$OUT/small" "${urls[@]}" ;;
	curl) timed "$BENCH_TMP/many-curl" curl -sSf --remote-name-all --output-dir "$OUT/small" "${urls[@]}" ;;
	esac
	[[ $(find "$OUT/small" -type f | wc -l) == "$FILES" ]] || bench_die "$tool: not all files arrived"
	rm -rf -- "$OUT/small"
}

bench_many() {
	local tool
	declare -gA MANY_T=() MANY_CAP_T=()
	for tool in ours wget curl; do
		many "$PORT" "$tool"
		MANY_T[$tool]=$T_S
		bench_log "$FILES files, plain server: $tool ${T_S}s"
	done
	for tool in ours wget curl; do
		many "$CAP_PORT" "$tool"
		MANY_CAP_T[$tool]=$T_S
		bench_log "$FILES files, ${CAP_MIBPS} MiB/s per connection: $tool ${T_S}s"
	done
}

served() { curl -sf "http://127.0.0.1:$PORT/__bytes"; }

# bench_resume: ours is killed (SIGKILL) once half the big file is in its
# partial file, then run again; the server's byte counter says what the
# second run cost.
bench_resume() {
	local url="http://127.0.0.1:$PORT/big.bin" dest="$OUT/big.bin" part="$OUT/.big.bin.part"
	local pid size=0 i before after
	"$BENCH_BIN/downloadload" fetch "$url" "$dest" >"$BENCH_TMP/resume-1.log" 2>&1 &
	pid=$!
	BENCH_PIDS+=("$pid")
	for ((i = 0; i < 6000; i++)); do
		size=$(stat -c %s "$part" 2>/dev/null || echo 0)
		((size >= BIG_BYTES / 2)) && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.01
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	bench_forget "$pid"
	KILLED_AT=$(stat -c %s "$part" 2>/dev/null || echo 0)
	((KILLED_AT > 0 && KILLED_AT < BIG_BYTES)) || bench_die "resume: the first run was not caught half way ($KILLED_AT bytes)"
	before=$(served)
	timed "$BENCH_TMP/resume-2" "$BENCH_BIN/downloadload" fetch "$url" "$dest"
	after=$(served)
	cmp -s "$dest" "$SRV/big.bin" || bench_die "resume: the resumed file differs"
	RESUME_BYTES=$((after - before))
	RESUME_T=$T_S
	rm -f -- "$dest"
}

median_of() { read -ra v <<<"$1"; bench_median "${v[@]}"; }

report() {
	local mib_s_ours mib_s_curl mib_s_wget t_ours t_curl t_wget
	t_ours=$(median_of "${BIG_T[ours]}")
	t_curl=$(median_of "${BIG_T[curl]}")
	t_wget=$(median_of "${BIG_T[wget]}")
	mib_s_ours=$(awk -v m="$BIG_MIB" -v t="$t_ours" 'BEGIN { printf "%.0f", m / t }')
	mib_s_curl=$(awk -v m="$BIG_MIB" -v t="$t_curl" 'BEGIN { printf "%.0f", m / t }')
	mib_s_wget=$(awk -v m="$BIG_MIB" -v t="$t_wget" 'BEGIN { printf "%.0f", m / t }')
	printf '\n# bench/download.sh, %s\n' "$(date -u +%Y-%m-%dT%H:%MZ)"
	printf '# before: %s\n# after:  %s\n\n' "$CONDITIONS_BEFORE" "$(bench_conditions)"
	printf '1. one %d MiB file, %d interleaved rounds, median wall time (all runs: ours %s/ curl %s/ wget %s)\n' \
		"$BIG_MIB" "$ROUNDS" "${BIG_T[ours]}" "${BIG_T[curl]}" "${BIG_T[wget]}"
	printf '   ours %ss (%s MiB/s)  curl %ss (%s MiB/s)  wget %ss (%s MiB/s)  ours/curl throughput %s (target >= 0.90)\n' \
		"$t_ours" "$mib_s_ours" "$t_curl" "$mib_s_curl" "$t_wget" "$mib_s_wget" "$(bench_ratio "$t_curl" "$t_ours")"
	printf '2. %d files of %d MiB, ours with its default pool of 5, wget and curl one after the other\n' "$FILES" "$SMALL_MIB"
	printf '   plain server:           ours %ss  wget %ss  curl %ss  ours/wget %s (target < 0.50)\n' \
		"${MANY_T[ours]}" "${MANY_T[wget]}" "${MANY_T[curl]}" "$(bench_ratio "${MANY_T[ours]}" "${MANY_T[wget]}")"
	printf '   %d MiB/s per connection: ours %ss  wget %ss  curl %ss  ours/wget %s (target < 0.50)\n' \
		"$CAP_MIBPS" "${MANY_CAP_T[ours]}" "${MANY_CAP_T[wget]}" "${MANY_CAP_T[curl]}" "$(bench_ratio "${MANY_CAP_T[ours]}" "${MANY_CAP_T[wget]}")"
	printf '3. resume: killed at %d of %d bytes; the second run fetched %d bytes = %s %% of the file in %ss (target < 60 %%)\n' \
		"$KILLED_AT" "$BIG_BYTES" "$RESUME_BYTES" "$(awk -v a="$RESUME_BYTES" -v b="$BIG_BYTES" 'BEGIN { printf "%.1f", 100 * a / b }')" "$RESUME_T"
	printf '4. peak RSS while downloading the big file, KiB, per round: ours %s/ curl %s/ wget %s (target: ours < 65536)\n' \
		"${BIG_RSS[ours]}" "${BIG_RSS[curl]}" "${BIG_RSS[wget]}"
}

prepare
make_files
start_servers
bench_big
bench_many
bench_resume
report
