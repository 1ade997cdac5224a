#!/usr/bin/env bash
# bench/auth.sh: what the vastauth gate costs, on 127.0.0.1 only.
#
#   1. Throughput: wrk req/s through our binary (`caddy run --adapter
#      portal_yaml`, one app) with ENABLE_AUTH=false, and with auth on,
#      presenting the session cookie and a Bearer token; interleaved rounds
#      in rotating order, medians, ratios auth/no-auth (target >= 0.95).
#   2. Wrong Basic credentials, each one new (a wrk Lua script numbers
#      them, because stock basic_auth caches verdicts per password):
#      rejections per second and proxy CPU per rejection of
#        - ours, vastauth with the limiter raised out of the way, so every
#          request pays the full check (401),
#        - ours as the portal configures it (the limiter answers 429 after
#          20 failures a minute),
#        - stock Caddy v2.11.9 basic_auth with a cost-14 bcrypt hash.
#      Target: ours >= 1000x the rejections per second of stock, each
#      under 100 us of CPU.
# See docs/vastauth.md for the numbers.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	bench_usage <<'EOF'
  -b SECONDS   duration of the stock bcrypt run (5-120, default 20; env BENCH_BCRYPT_DURATION)
EOF
}

bench_wrk_defaults
BCRYPT_DURATION=${BENCH_BCRYPT_DURATION:-20}
while (($#)); do
	case $1 in
	-b) BCRYPT_DURATION=${2:?-b needs a value}; shift 2 ;;
	*) bench_option "$@"; shift "$BENCH_SHIFT" ;;
	esac
done

bench_wrk_check
bench_in_range "bcrypt duration" "$BCRYPT_DURATION" 5 120

bench_prepare "$PIN"

# --- ports, secrets, configs --------------------------------------------------
bench_port BE                 # backend
bench_port PN; bench_port PNA       # ours, ENABLE_AUTH=false; admin
bench_port PA; bench_port PAA       # ours, auth on (portal defaults); admin
bench_port CV; bench_port CVA       # ours, Caddyfile vastauth with the limiter raised; admin
bench_port SB; bench_port SBA       # stock basic_auth; admin

TOKEN=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
PASSWORD="bench-$(head -c 12 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"

portal_yaml() { # EXTERNAL
	echo "applications:"
	bench_app_yaml App "$1" "$BE"
}
portal_yaml "$PN" >"$BENCH_TMP/noauth.yaml"
portal_yaml "$PA" >"$BENCH_TMP/auth.yaml"

cat >"$BENCH_TMP/vastauth.Caddyfile" <<EOF
{
	admin 127.0.0.1:$CVA
	persist_config off
}
http://127.0.0.1:$CV {
	vastauth {
		secrets {env.OPEN_BUTTON_TOKEN}
		state_dir $BENCH_TMP/vastauth/state
		failure_limit 2000000000
		failure_window 1s
	}
	reverse_proxy 127.0.0.1:$BE
}
EOF

bench_log "hashing the stock side's password with bcrypt cost 14"
HASH=$("$BENCH_BIN/caddy-stock" hash-password --algorithm bcrypt --bcrypt-cost 14 --plaintext "$PASSWORD")
[[ $HASH == \$2a\$14\$* ]] || bench_die "caddy hash-password gave '$HASH', want a cost-14 bcrypt hash"
cat >"$BENCH_TMP/stock.Caddyfile" <<EOF
{
	admin 127.0.0.1:$SBA
	persist_config off
}
http://127.0.0.1:$SB {
	basic_auth {
		vastai $HASH
	}
	reverse_proxy 127.0.0.1:$BE
}
EOF

# A clean environment for each side (bench/lib.sh).
bench_clean_env
side_env() { # NAME -> array SIDE_ENV
	bench_side_env "$1"
	SIDE_ENV+=("HOME=$BENCH_TMP/$1" GOMAXPROCS=1)
}
portal_env() { # NAME ADMIN ENABLE_AUTH -> array SIDE_ENV
	side_env "$1"
	bench_portal_env "$1" "$2"
	SIDE_ENV+=("ENABLE_AUTH=$3" "OPEN_BUTTON_TOKEN=$TOKEN" VAST_CONTAINERLABEL=C.bench)
}

# --- processes ----------------------------------------------------------------
declare -A PID
bench_start backend "${LOAD_PIN[@]}" env GOMAXPROCS=1 "$BENCH_BIN/backend" -size 1024 -listen "127.0.0.1:$BE"
bench_wait_url "http://127.0.0.1:$BE/" 10

portal_env noauth "$PNA" false
bench_start noauth "${PROXY_PIN[@]}" "${SIDE_ENV[@]}" "$BENCH_BIN/caddy" run --adapter portal_yaml --config "$BENCH_TMP/noauth.yaml"
PID[noauth]=$BENCH_LAST_PID
portal_env auth "$PAA" true
bench_start auth "${PROXY_PIN[@]}" "${SIDE_ENV[@]}" "$BENCH_BIN/caddy" run --adapter portal_yaml --config "$BENCH_TMP/auth.yaml"
PID[auth]=$BENCH_LAST_PID
side_env vastauth
bench_start vastauth "${PROXY_PIN[@]}" "${SIDE_ENV[@]}" "OPEN_BUTTON_TOKEN=$TOKEN" \
	"$BENCH_BIN/caddy" run --adapter caddyfile --config "$BENCH_TMP/vastauth.Caddyfile"
PID[vastauth]=$BENCH_LAST_PID
side_env stock
bench_start stock "${PROXY_PIN[@]}" "${SIDE_ENV[@]}" \
	"$BENCH_BIN/caddy-stock" run --adapter caddyfile --config "$BENCH_TMP/stock.Caddyfile"
PID[stock]=$BENCH_LAST_PID

bench_wait_url "http://127.0.0.1:$PN/" 15
bench_wait_url "http://127.0.0.1:$PA/" 15 -H "Authorization: Bearer $TOKEN"
bench_wait_url "http://127.0.0.1:$CV/" 15 -H "Authorization: Bearer $TOKEN"
bench_wait_url "http://127.0.0.1:$SB/" 30 -u "vastai:$PASSWORD"

# The session cookie a browser would hold after opening ?token=.
SESSION=$(curl -s -o /dev/null -D - -H 'Accept: application/json' "http://127.0.0.1:$PA/?token=$TOKEN" |
	tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: C\.bench_auth_token=\([^;]*\).*/\1/p' | head -n 1)
[[ $SESSION == v2.* ]] || bench_die "no session cookie from ?token= (got '$SESSION')"
COOKIE="Cookie: C.bench_auth_token=$SESSION"
for h in "$COOKIE" "Authorization: Bearer $TOKEN"; do
	code=$(curl -s -o /dev/null -w '%{http_code}' -H "$h" "http://127.0.0.1:$PA/")
	[[ $code == 200 ]] || bench_die "credential '${h%%:*}' got $code, want 200"
done

# wrk script: every request presents a new wrong Basic password.
cat >"$BENCH_TMP/wrong-basic.lua" <<'EOF'
local bit = require("bit")
local digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local sym = {}
for i = 1, 64 do sym[i - 1] = digits:sub(i, i) end

local function base64(s)
	local out = {}
	for i = 1, #s, 3 do
		local a, b, c = s:byte(i, i + 2)
		local n = bit.bor(bit.lshift(a, 16), bit.lshift(b or 0, 8), c or 0)
		out[#out + 1] = sym[bit.band(bit.rshift(n, 18), 63)]
		out[#out + 1] = sym[bit.band(bit.rshift(n, 12), 63)]
		out[#out + 1] = b and sym[bit.band(bit.rshift(n, 6), 63)] or "="
		out[#out + 1] = c and sym[bit.band(n, 63)] or "="
	end
	return table.concat(out)
end
-- A wrong encoding would be rejected before any hash is computed and
-- flatter the stock side: check it against known values first.
assert(base64("a") == "YQ==" and base64("ab") == "YWI=" and base64("abc") == "YWJj")
assert(base64("vastai:x") == "dmFzdGFpOng=")

local n = 0
request = function()
	n = n + 1
	local h = { ["Authorization"] = "Basic " .. base64("vastai:wrong-" .. tostring(n) .. "-" .. tostring(math.random(1e9))) }
	return wrk.format(nil, nil, h)
end
EOF

# --- measuring ------------------------------------------------------------------
# run_wrk PORT PID CONNS SECONDS WANT-NON2XX [WRK ARGS...] prints "req/s
# cpu-us-per-request". WANT-NON2XX=1: every answer must be a 4xx (the
# wrong-credential runs); 0: none may be.
run_wrk() {
	local port=$1 pid=$2 conns=$3 secs=$4 want=$5 out t0 t1
	shift 5
	t0=$(bench_cpu_ticks "$pid")
	out=$("${LOAD_PIN[@]}" wrk -t1 -c"$conns" -d"${secs}s" --timeout 30s "$@" "http://127.0.0.1:$port/")
	t1=$(bench_cpu_ticks "$pid")
	printf '%s\n' "$out" >>"$BENCH_TMP/wrk.log"
	grep -q 'Socket errors' <<<"$out" && bench_die "wrk on :$port: $(grep 'Socket errors' <<<"$out")"
	awk -v ticks=$((t1 - t0)) -v hz="$BENCH_CLK_TCK" -v want="$want" -v port="$port" '
		/^Requests\/sec:/ { rps = $2 }
		/ requests in / { n = $1 }
		/Non-2xx or 3xx responses:/ { bad = $NF }
		END {
			if (n == 0) { print "no requests completed on :" port > "/dev/stderr"; exit 1 }
			if (want && bad + 0 != n + 0) { print "only " bad + 0 " of " n " answers were errors on :" port > "/dev/stderr"; exit 1 }
			if (!want && bad + 0 > 0) { print bad " error answers on :" port > "/dev/stderr"; exit 1 }
			printf "%s %.1f\n", rps, ticks * 1e6 / hz / n
		}' <<<"$out"
}

# 1. Throughput.
declare -A SIDE_PORT=([noauth]=$PN [cookie]=$PA [bearer]=$PA)
declare -A SIDE_PIDOF=([noauth]=${PID[noauth]} [cookie]=${PID[auth]} [bearer]=${PID[auth]})
declare -A SIDE_HDR=([noauth]="X-Bench: none" [cookie]="$COOKIE" [bearer]="Authorization: Bearer $TOKEN")
SIDES=(noauth cookie bearer)
declare -A RPS CPU
bench_log "warm-up: 2s each"
for side in "${SIDES[@]}"; do
	run_wrk "${SIDE_PORT[$side]}" "${SIDE_PIDOF[$side]}" "$CONNS" 2 0 -H "${SIDE_HDR[$side]}" >/dev/null
done
one_run() { # SIDE -> appends to RPS[SIDE], CPU[SIDE]
	local side=$1 rps cpu
	read -r rps cpu < <(run_wrk "${SIDE_PORT[$side]}" "${SIDE_PIDOF[$side]}" "$CONNS" "$DURATION" 0 -H "${SIDE_HDR[$side]}")
	RPS[$side]+="$rps "
	CPU[$side]+="$cpu "
	bench_log "  $side: $rps req/s, proxy CPU $cpu us/request"
}
bench_wrk_rounds one_run "${SIDES[@]}"
declare -A MED CPUMED
bench_medians RPS MED "${SIDES[@]}"
bench_medians CPU CPUMED "${SIDES[@]}"

# 2. Wrong Basic credentials.
bench_log "wrong Basic credentials: ours (limiter raised), ${DURATION}s"
read -r WB_RPS WB_CPU < <(run_wrk "$CV" "${PID[vastauth]}" "$CONNS" "$DURATION" 1 -s "$BENCH_TMP/wrong-basic.lua")
bench_log "  $WB_RPS rejections/s, $WB_CPU us CPU each"
bench_log "wrong Basic credentials: ours as the portal configures it (limiter on), ${DURATION}s"
read -r WL_RPS WL_CPU < <(run_wrk "$PA" "${PID[auth]}" "$CONNS" "$DURATION" 1 -s "$BENCH_TMP/wrong-basic.lua")
bench_log "  $WL_RPS rejections/s, $WL_CPU us CPU each"
# Stock: as many connections as the proxy has cores, so requests do not
# just queue behind each other; long enough for a few dozen bcrypt runs.
bench_log "wrong Basic credentials: stock basic_auth bcrypt cost 14, ${BCRYPT_DURATION}s"
read -r SB_RPS SB_CPU < <(run_wrk "$SB" "${PID[stock]}" 2 "$BCRYPT_DURATION" 1 -s "$BENCH_TMP/wrong-basic.lua")
bench_log "  $SB_RPS rejections/s, $SB_CPU us CPU each"
CONDITIONS_AFTER=$(bench_conditions)

# --- report -----------------------------------------------------------------------
cookie_ratio=$(bench_ratio "${MED[cookie]}" "${MED[noauth]}")
bearer_ratio=$(bench_ratio "${MED[bearer]}" "${MED[noauth]}")
reject_ratio=$(awk -v a="$WB_RPS" -v b="$SB_RPS" 'BEGIN { if (b == 0) print "n/a"; else printf "%.0f\n", a / b }')
ge() { awk -v a="$1" -v b="$2" 'BEGIN { print (a != "n/a" && a + 0 >= b + 0) ? 1 : 0 }'; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 < b + 0) ? 1 : 0 }'; }

echo
echo "== vastauth benchmark: our binary with and without auth; wrong Basic vs stock Caddy v2.11.9 basic_auth (bcrypt 14) =="
echo "machine before: $CONDITIONS_BEFORE"
echo "machine after:  $CONDITIONS_AFTER"
echo "throughput: wrk -t1 -c$CONNS -d${DURATION}s, $ROUNDS interleaved rounds, 1 KiB body; $PIN_NOTE"
echo
printf '%-44s %12s %14s %8s  %s\n' "throughput (portal_yaml, one app)" "req/s" "CPU us/req" "ratio" "target"
printf '%-44s %12s %14s %8s\n' "auth off (ENABLE_AUTH=false)" "${MED[noauth]}" "${CPUMED[noauth]}" "1.00"
printf '%-44s %12s %14s %8s  %s\n' "auth on, session cookie" "${MED[cookie]}" "${CPUMED[cookie]}" "$cookie_ratio" \
	">= 0.95: $(bench_verdict "$(ge "$cookie_ratio" 0.95)")"
printf '%-44s %12s %14s %8s  %s\n' "auth on, Authorization: Bearer" "${MED[bearer]}" "${CPUMED[bearer]}" "$bearer_ratio" \
	">= 0.95: $(bench_verdict "$(ge "$bearer_ratio" 0.95)")"
echo
printf '%-44s %12s %14s %8s  %s\n' "wrong Basic password, new each request" "rejections/s" "CPU us each" "vs stock" "target"
printf '%-44s %12s %14s %8s  %s\n' "ours, vastauth, every request checked (401)" "$WB_RPS" "$WB_CPU" "${reject_ratio}x" \
	">= 1000x: $(bench_verdict "$(ge "$reject_ratio" 1000)"), < 100 us: $(bench_verdict "$(lt "$WB_CPU" 100)")"
printf '%-44s %12s %14s %8s\n' "ours, portal defaults (429 after 20/min)" "$WL_RPS" "$WL_CPU" \
	"$(awk -v a="$WL_RPS" -v b="$SB_RPS" 'BEGIN { if (b == 0) print "n/a"; else printf "%.0fx\n", a / b }')"
printf '%-44s %12s %14s %8s\n' "stock basic_auth, bcrypt cost 14 (401), -c2" "$SB_RPS" "$SB_CPU" "1x"
echo
