# shellcheck shell=bash
# lib.sh: what every supervisor program of the image shares. Source it, do
# not run it:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   portal_program jupyter            # log file, restart throttle
#   portal_require_app Jupyter        # exits 0 when the app is not configured
#   exec jupyter notebook ...
#
# The programs are declared in /etc/supervisor/conf.d with
# autorestart=unexpected, exitcodes=0 and startsecs=0: a wrapper that exits 0
# ("not configured", "not installed") is left alone by supervisord, any other
# exit is restarted. Because startsecs=0 gives supervisord no backoff of its
# own, portal_program spaces restarts PORTAL_RESTART_DELAY seconds apart.
#
# Paths default to the image layout under PORTAL_ROOT (empty in the image) and
# each can be set on its own; entrypoint.sh exports the resolved values.

: "${PORTAL_ROOT:=}"
: "${PORTAL_YAML:=${PORTAL_ROOT}/etc/portal.yaml}"
: "${PORTAL_LOG_DIR:=${PORTAL_ROOT}/var/log/portal}"
: "${PORTAL_STATE_DIR:=${PORTAL_ROOT}/var/lib/portal}"
: "${PORTAL_RESTART_DELAY:=5}"
: "${WORKSPACE:=${PORTAL_ROOT}/workspace}"

# PORTAL_PROGRAM names the program in messages and log files.
PORTAL_PROGRAM=${PORTAL_PROGRAM:-${SUPERVISOR_PROCESS_NAME:-${0##*/}}}

# portal_say MESSAGE...: one line on the program's output, which
# portal_log_to sends to the log viewer as well.
portal_say() {
    printf '[%s] %s\n' "$PORTAL_PROGRAM" "$*"
}

# portal_log_to NAME: from here on, everything this script and the program it
# execs print goes to $PORTAL_LOG_DIR/NAME.log (what the portal's log viewer
# tails) and on to supervisord, which forwards it to the container log.
#
# log-tee does the writing when it is installed; plain `tee -a` stands in for
# it otherwise. The tee runs as a child that the program inherits: it ends
# when the program's output closes. supervisord signals only the program
# (stopasgroup=false), so the tee outlives it and records the shutdown lines;
# killasgroup=true still removes both if the program hangs.
portal_log_to() {
    local file=${PORTAL_LOG_DIR}/$1.log
    if ! mkdir -p "$PORTAL_LOG_DIR"; then
        portal_say "cannot create ${PORTAL_LOG_DIR}; output goes to the container log only"
        return 0
    fi
    if command -v log-tee >/dev/null 2>&1; then
        exec > >(exec log-tee "$file") 2>&1
    else
        exec > >(exec tee -a "$file") 2>&1
    fi
}

# portal_throttle NAME: sleep until PORTAL_RESTART_DELAY seconds have passed
# since NAME last started, so a program that fails at once is retried every
# few seconds instead of in a tight loop. The start time is a file's mtime in
# $PORTAL_STATE_DIR/starts; without that directory nothing is throttled.
portal_throttle() {
    local dir=${PORTAL_STATE_DIR}/starts delay=$PORTAL_RESTART_DELAY stamp last now wait
    stamp=${dir}/$1
    [[ $delay =~ ^[0-9]+$ ]] || delay=5
    mkdir -p "$dir" 2>/dev/null || return 0
    if [[ -f $stamp ]] && last=$(stat -c %Y "$stamp" 2>/dev/null); then
        now=$(date +%s)
        wait=$((last + delay - now))
        # A clock that jumped backwards gives a wait beyond the delay: ignore it.
        if ((wait > 0 && wait <= delay)); then
            portal_say "restarted within ${delay}s; waiting ${wait}s"
            sleep "$wait"
        fi
    fi
    touch "$stamp" 2>/dev/null || true
}

# portal_program NAME: the usual start of a wrapper: output to NAME.log and
# restarts spaced out.
portal_program() {
    PORTAL_PROGRAM=$1
    portal_log_to "$1"
    portal_throttle "$1"
}

# portal_require_app NAME...: continue only when an app of one of these names
# (the portal.yaml key or display name, exact spelling) is in the portal
# configuration: $PORTAL_YAML, or PORTAL_CONFIG when the file is missing,
# as `caddy portal check` reads it. Not configured: say so and exit 0, which
# supervisord takes as a finished program and does not restart. A broken
# configuration (or no caddy binary): exit 1, so supervisord retries after the
# throttle, by which time the file may be fixed.
portal_require_app() {
    local name rc=1
    for name in "$@"; do
        caddy portal check --config "$PORTAL_YAML" --has "$name"
        rc=$?
        ((rc == 1)) || break
    done
    case $rc in
    0) return 0 ;;
    1)
        portal_say "no app named $(portal_join ' or ' "$@") in ${PORTAL_YAML} (or PORTAL_CONFIG); not starting"
        exit 0
        ;;
    *)
        portal_say "cannot read the portal configuration (caddy portal check exited ${rc}); will retry"
        exit 1
        ;;
    esac
}

# portal_require_command CMD: exit 0 (no restart) when CMD is not installed:
# the image may list an app in PORTAL_CONFIG that a provisioning script has
# not installed yet.
portal_require_command() {
    if ! command -v "$1" >/dev/null 2>&1; then
        portal_say "$1 is not installed; not starting (install it, then: supervisorctl start ${PORTAL_PROGRAM})"
        exit 0
    fi
}

# portal_join SEP WORD...: the words joined by SEP, each quoted.
portal_join() {
    local sep=$1 out="" w
    shift
    for w in "$@"; do
        out+="${out:+$sep}\"$w\""
    done
    printf '%s' "$out"
}
