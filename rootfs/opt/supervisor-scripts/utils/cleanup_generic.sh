# shellcheck shell=bash
# cleanup_generic.sh: on TERM or INT, stop everything this script started,
# so that no child outlives its program: TERM to every descendant (found in
# /proc, so children that left the process group, like the program under
# pty, are found too), up to 5 s for them to go, then KILL. The log sink of
# logging.sh is spared: it ends by itself once the last writer is gone, with
# the shutdown lines in the log. Then the script exits 128+signal.

# __portal_descendants: __portal_pids = this shell's descendants.
__portal_descendants() {
    local -A kids=()
    local f line pid ppid p c
    for f in /proc/[0-9]*/stat; do
        read -r line 2>/dev/null <"$f" || continue
        pid=${f#/proc/}
        pid=${pid%/stat}
        read -r _ ppid _ <<<"${line##*) }"
        kids[$ppid]+=" $pid"
    done
    __portal_pids=()
    local -a queue=("$$")
    while ((${#queue[@]})); do
        p=${queue[0]}
        queue=("${queue[@]:1}")
        for c in ${kids[$p]:-}; do
            [[ $c == "${__PORTAL_LOG_PID:-}" ]] && continue
            __portal_pids+=("$c")
            queue+=("$c")
        done
    done
}

# __portal_alive PID...: true when one of them runs (a zombie does not).
__portal_alive() {
    local p line
    for p in "$@"; do
        read -r line 2>/dev/null <"/proc/${p}/stat" || continue
        line=${line##*) }
        [[ ${line:0:1} != Z ]] && return 0
    done
    return 1
}

__portal_cleanup() {
    local i
    trap '' TERM INT # a second signal must not cut the cleanup short
    __portal_descendants
    if ((${#__portal_pids[@]})); then
        kill -TERM "${__portal_pids[@]}" 2>/dev/null
        for ((i = 0; i < 50; i++)); do
            __portal_alive "${__portal_pids[@]}" || break
            sleep 0.1
        done
        kill -KILL "${__portal_pids[@]}" 2>/dev/null
    fi
    exit $((128 + $1))
}

trap '__portal_cleanup 15' TERM
trap '__portal_cleanup 2' INT
