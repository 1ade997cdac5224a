# shellcheck shell=bash
# logging.sh [LOGFILE]: the first thing every supervisor program sources,
# ours and templates' alike (the reference image's contract):
#
#   . /opt/supervisor-scripts/utils/logging.sh
#
# - PROC_NAME is the program's name (supervisord's, from the program's
#   environment= line or SUPERVISOR_PROCESS_NAME).
# - An existing LOGFILE [$PORTAL_LOG_DIR/$PROC_NAME.log] and its plain twin
#   one directory up (/var/log/$PROC_NAME.log) become *.old, then stdout and
#   stderr go through log-tee to both and on to supervisord.
# - `pty CMD ARGS...` runs CMD under a pseudo-terminal, so programs that draw
#   progress bars with '\r' keep doing so (the log viewer renders them).
# - A program restarted within PORTAL_RESTART_DELAY [5] seconds of its last
#   start waits the rest: with startsecs=0 supervisord restarts a failing
#   program in a tight loop otherwise.

: "${PROC_NAME:=${SUPERVISOR_PROCESS_NAME:-${0##*/}}}"
PROC_NAME=${PROC_NAME%.sh}
export PROC_NAME
# shellcheck source=SCRIPTDIR/paths.sh
. "${BASH_SOURCE[0]%/*}/paths.sh"

__portal_log_start() {
    local log=${1:-${PORTAL_LOG_DIR}/${PROC_NAME}.log} f
    mkdir -p "${log%/*}" 2>/dev/null
    for f in "$log" "${log%/*/*}/${log##*/}"; do
        if [[ -f $f ]]; then
            mv -f "$f" "${f}.old" 2>/dev/null
        fi
    done
    if command -v log-tee >/dev/null 2>&1; then
        exec > >(exec log-tee "$log") 2>&1
    else
        exec > >(exec tee -a "$log") 2>&1
    fi
    # The log sink's pid: cleanup_generic.sh lets it drain instead of
    # killing it with the program's other children.
    __PORTAL_LOG_PID=$!
}

# pty CMD ARGS...: CMD on a pseudo-terminal (script(1), util-linux), so it
# sees a terminal and keeps its '\r' progress bars; `stty -onlcr` keeps its
# line endings as written. Runs in the background and is waited for, so that
# a TERM reaches cleanup_generic.sh's trap at once rather than after CMD
# ends. DISABLE_PTY=true, or no script(1), runs CMD directly.
pty() {
    if [[ ${DISABLE_PTY:-false} == true ]] || ! command -v script >/dev/null 2>&1; then
        "$@"
        return
    fi
    local cmd
    printf -v cmd '%q ' "$@"
    SHELL=/bin/bash script -qefc "stty -onlcr 2>/dev/null; exec ${cmd}" /dev/null &
    portal_wait $!
}

# __portal_restart_delay: sleep until PORTAL_RESTART_DELAY seconds have
# passed since this program's last start (an mtime under PORTAL_STATE_DIR;
# without a writable state dir nothing is spaced).
__portal_restart_delay() {
    local dir=${PORTAL_STATE_DIR}/starts delay=${PORTAL_RESTART_DELAY:-5} last now wait
    [[ $delay =~ ^[0-9]+$ ]] || delay=5
    mkdir -p "$dir" 2>/dev/null || return 0
    if last=$(stat -c %Y "${dir}/${PROC_NAME}" 2>/dev/null); then
        now=$(date +%s)
        wait=$((last + delay - now))
        # A clock that jumped backwards gives a wait beyond the delay.
        if ((wait > 0 && wait <= delay)); then
            echo "${PROC_NAME}: restarted within ${delay}s; waiting ${wait}s"
            sleep "$wait"
        fi
    fi
    touch "${dir}/${PROC_NAME}" 2>/dev/null || true
}

__portal_log_start "${1:-}"
__portal_restart_delay
