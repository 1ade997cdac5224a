# shellcheck shell=bash
# paths.sh: the default of every path the boot and the supervisor programs
# use, declared once (docs/boot.md has the table), and the helpers both
# sides share. Sourced by entrypoint.sh, logging.sh (so every program has
# them) and exit_portal.sh:
#
#   . /opt/supervisor-scripts/utils/paths.sh
#
# A variable already set keeps its value. PORTAL_ROOT [empty] prefixes every
# default but PORTAL_SKIP_DIR's, so a test runs the whole boot inside a
# temporary directory. Nothing is exported here: the entrypoint exports the
# resolved paths when it starts supervisord, so that the environment file
# records the container's own environment, not these defaults. The Go side
# declares the same defaults (portalconfig.Default…); TestBootPathDefaults
# holds them equal.
# shellcheck disable=SC2034 # the variables are for the sourcing script
: "${PORTAL_ROOT:=}"
: "${PORTAL_ENV_FILE:=$PORTAL_ROOT/etc/environment}"
: "${LAUNCH_FILE:=$PORTAL_ROOT/.launch}"
: "${PROVISIONING_LOCK:=$PORTAL_ROOT/.provisioning}"
: "${PROVISIONING_DONE:=$PORTAL_ROOT/.provisioning_complete}"
: "${PROVISIONING_FAILED:=$PORTAL_ROOT/.provisioning_failed}"
: "${PROVISIONING_FILE:=$PORTAL_ROOT/provisioning.sh}"
: "${PROVISIONING_YAML:=$PORTAL_ROOT/provisioning.yaml}"
: "${PROVISIONER_STATE_DIR:=$PORTAL_ROOT/.provisioner_state}"
: "${FIRST_BOOT_DONE:=$PORTAL_ROOT/.first_boot_complete}"
: "${BOOT_HOOK_DIR:=$PORTAL_ROOT/etc/vast_boot.d}"
: "${PORTAL_YAML:=$PORTAL_ROOT/etc/portal.yaml}"
: "${INSTANCE_CERT:=$PORTAL_ROOT/etc/instance.crt}"
: "${INSTANCE_KEY:=$PORTAL_ROOT/etc/instance.key}"
: "${PORTAL_LOG_DIR:=$PORTAL_ROOT/var/log/portal}"
: "${PORTAL_STATE_DIR:=$PORTAL_ROOT/var/lib/portal}"
: "${PORTAL_SKIP_DIR:=/tmp/supervisor-skip}"
: "${SUPERVISOR_CONF:=$PORTAL_ROOT/etc/supervisor/supervisord.conf}"
: "${SUPERVISOR_SOCKET:=$PORTAL_ROOT/var/run/supervisor.sock}"
: "${SUPERVISOR_PIDFILE:=$PORTAL_ROOT/var/run/supervisord.pid}"
: "${WORKSPACE:=$PORTAL_ROOT/workspace}"
: "${WORKSPACE_TEMPLATE:=$PORTAL_ROOT/opt/workspace-internal}"
: "${ROOT_AUTHORIZED_KEYS:=$PORTAL_ROOT/root/.ssh/authorized_keys}"

# portal_skip_mark NAME [TEXT]: writes the skip marker PORTAL_SKIP_DIR/NAME
# (holding TEXT, the app's name, when given). The directory is made
# world-writable and sticky from its creation: programs running as other
# users write their markers there too.
portal_skip_mark() {
    if [[ ! -d $PORTAL_SKIP_DIR ]]; then
        mkdir -p "${PORTAL_SKIP_DIR%/*}" && mkdir -m 1777 "$PORTAL_SKIP_DIR" 2>/dev/null
    fi
    printf '%s\n' "${2:-}" >"${PORTAL_SKIP_DIR}/$1"
}

# portal_poll SECONDS EVERY SAY NOTE CMD...: runs CMD once a second until
# it succeeds, at most SECONDS seconds (then status 1); while it waits,
# `SAY NOTE` at the first second and every EVERY seconds after.
# portal_waited is how many seconds it waited.
portal_poll() {
    local limit=$1 every=$2 say=$3 note=$4
    shift 4
    portal_waited=0
    until "$@"; do
        ((portal_waited >= limit)) && return 1
        ((portal_waited % every == 0)) && "$say" "$note"
        sleep 1
        portal_waited=$((portal_waited + 1))
    done
}

# portal_wait PID: PID's exit status. `wait` returns early (>128) when a
# trapped signal arrives; the loop waits again while PID lives, so that the
# trap runs at once and the status is still the process's own.
portal_wait() {
    local rc
    while :; do
        wait "$1"
        rc=$?
        if ((rc > 128)) && kill -0 "$1" 2>/dev/null; then
            continue
        fi
        return "$rc"
    done
}
