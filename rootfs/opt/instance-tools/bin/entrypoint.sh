#!/bin/bash
# entrypoint.sh: the container's start script (the image's ENTRYPOINT, PID 1).
#
#   1. the container environment -> /etc/environment (0600), for SSH sessions
#   2. the /.provisioning lock, which tells scripts provisioning is under way
#   3. /opt/workspace-internal copied into $WORKSPACE, item by item, never
#      over something already there
#   4. a self-signed instance certificate when the pair is missing
#   5. /etc/portal.yaml from PORTAL_CONFIG when the file is missing
#   6. supervisord, which starts caddy.sh and the app wrappers
#   7. PROVISIONING_SCRIPT (path or URL), once, until it succeeds
#   8. the lock removed; then it waits on supervisord. SIGTERM or SIGINT stop
#      provisioning and supervisord (which stops every program) and the script
#      exits with supervisord's status.
#
# Every fixed path is overridable (docs/boot.md has the table). PORTAL_ROOT
# [empty] prefixes every default path, so a test runs the whole boot inside a
# temporary directory; a variable set on its own wins over the prefix.
set -uo pipefail
shopt -s nullglob dotglob

stopping=0
supervisord_pid=
provisioning_pid=

log() { printf '[entrypoint] %s\n' "$*"; }

# resolve_paths sets each path variable that is not already set. They are
# exported only when supervisord starts, so /etc/environment records the
# container's own environment and not these defaults.
resolve_paths() {
    PORTAL_ROOT=${PORTAL_ROOT:-}
    local r=$PORTAL_ROOT
    : "${PORTAL_ENV_FILE:=$r/etc/environment}"
    : "${PROVISIONING_LOCK:=$r/.provisioning}"
    : "${PROVISIONING_DONE:=$r/.provisioning_complete}"
    : "${PROVISIONING_FILE:=$r/provisioning.sh}"
    : "${PORTAL_YAML:=$r/etc/portal.yaml}"
    : "${INSTANCE_CERT:=$r/etc/instance.crt}"
    : "${INSTANCE_KEY:=$r/etc/instance.key}"
    : "${PORTAL_LOG_DIR:=$r/var/log/portal}"
    : "${PORTAL_STATE_DIR:=$r/var/lib/portal}"
    : "${SUPERVISOR_CONF:=$r/etc/supervisor/supervisord.conf}"
    : "${SUPERVISOR_SOCKET:=$r/var/run/supervisor.sock}"
    : "${SUPERVISOR_PIDFILE:=$r/var/run/supervisord.pid}"
    : "${WORKSPACE:=$r/workspace}"
    : "${WORKSPACE_TEMPLATE:=$r/opt/workspace-internal}"
}

# write_environment records the container environment as NAME='value' lines,
# the form both pam_env and `set -a; . /etc/environment` read. Single quotes
# make every value inert when a shell sources the file (a ' inside becomes
# '\''); pam_env drops quote characters, so it sees such a value without its
# quotes. The file holds secrets (WEB_PASSWORD, CF_TUNNEL_TOKEN...), hence
# 0600: PAM reads it as root at login. It is written to a temporary file and
# renamed, so a reader never sees half of it.
write_environment() {
    local file=$PORTAL_ENV_FILE tmp kv name value q="'\\''"
    local -a skipped=()
    mkdir -p "$(dirname "$file")" || return 1
    tmp=$(mktemp "${file}.XXXXXX") || return 1 # mktemp creates it 0600
    {
        printf '# Written by entrypoint.sh at every container start from the container environment.\n'
        while IFS= read -r -d '' kv; do
            name=${kv%%=*}
            value=${kv#*=}
            [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
            case $name in
            HOME | SHLVL | PWD | OLDPWD | _) continue ;; # per-shell, not per-container
            esac
            # A line per variable: a value spanning lines has no faithful form.
            if [[ $value == *$'\n'* ]]; then
                skipped+=("$name")
                continue
            fi
            printf "%s='%s'\n" "$name" "${value//\'/$q}"
        done < <(env -0)
    } >"$tmp"
    if ! { chmod 600 "$tmp" && mv -f "$tmp" "$file"; }; then
        rm -f "$tmp"
        return 1
    fi
    if ((${#skipped[@]})); then
        log "not in ${file} (values with newlines): ${skipped[*]}"
    fi
}

# copy_workspace fills $WORKSPACE from the image's template directory: each
# top-level item that the workspace lacks is copied; anything already there
# (a volume kept from an earlier run, user files) is left as it is.
copy_workspace() {
    local item target n=0
    mkdir -p "$WORKSPACE" || {
        log "cannot create WORKSPACE ${WORKSPACE}"
        return 1
    }
    [[ -d $WORKSPACE_TEMPLATE ]] || return 0
    for item in "$WORKSPACE_TEMPLATE"/*; do
        target=${WORKSPACE}/${item##*/}
        [[ -e $target || -L $target ]] && continue
        cp -a "$item" "$target" && n=$((n + 1))
    done
    ((n == 0)) || log "copied ${n} item(s) from ${WORKSPACE_TEMPLATE} to ${WORKSPACE}"
}

# ensure_cert creates a self-signed ECDSA P-256 pair for localhost, 127.0.0.1
# and PUBLIC_IPADDR when the certificate or the key is missing (a certificate
# without its key is useless, so both are replaced). The portal serves it when
# ENABLE_HTTPS=true. A PUBLIC_IPADDR that openssl refuses costs only that
# name, not the certificate.
ensure_cert() {
    if [[ -s $INSTANCE_CERT && -s $INSTANCE_KEY ]]; then
        return 0
    fi
    if ! command -v openssl >/dev/null 2>&1; then
        log "openssl not found: no instance certificate; the portal will serve plain HTTP"
        return 0
    fi
    local public=${PUBLIC_IPADDR:-} kind=DNS
    if [[ $public =~ ^[0-9.]+$ || $public == *:* ]]; then
        kind=IP
    fi
    if [[ -n $public && ! $public =~ ^[A-Za-z0-9.:-]+$ ]]; then
        log "PUBLIC_IPADDR=${public} is not an address or host name; the certificate names localhost only"
        public=
    fi
    if [[ -n $public ]] && make_cert "$public" "DNS:localhost,IP:127.0.0.1,${kind}:${public}"; then
        return 0
    fi
    make_cert localhost "DNS:localhost,IP:127.0.0.1"
}

# make_cert CN SAN writes the pair through temporary files in the target
# directories: the key is 0600 from its first byte (mktemp) to its rename.
make_cert() {
    local cn=$1 san=$2 key crt err
    mkdir -p "$(dirname "$INSTANCE_KEY")" "$(dirname "$INSTANCE_CERT")" || return 1
    key=$(mktemp "${INSTANCE_KEY}.XXXXXX") || return 1
    crt=$(mktemp "${INSTANCE_CERT}.XXXXXX") || {
        rm -f "$key"
        return 1
    }
    if err=$(openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -sha256 -days 825 -subj "/CN=${cn}" \
        -addext "subjectAltName=${san}" \
        -addext "basicConstraints=critical,CA:FALSE" \
        -addext "keyUsage=critical,digitalSignature" \
        -addext "extendedKeyUsage=serverAuth" \
        -keyout "$key" -out "$crt" 2>&1) &&
        chmod 600 "$key" && chmod 644 "$crt" &&
        mv -f "$key" "$INSTANCE_KEY" && mv -f "$crt" "$INSTANCE_CERT"; then
        log "created a self-signed instance certificate for ${san} in ${INSTANCE_CERT}"
        return 0
    fi
    rm -f "$key" "$crt"
    log "creating the instance certificate for ${san} failed: ${err//$'\n'/ }"
    return 1
}

# write_portal_yaml writes PORTAL_YAML from PORTAL_CONFIG when the file is
# missing; an existing file (edited by the user, or left by a provisioning
# script) always wins.
write_portal_yaml() {
    if [[ -e $PORTAL_YAML ]]; then
        log "using the existing ${PORTAL_YAML}"
        return 0
    fi
    if [[ -z ${PORTAL_CONFIG:-} ]]; then
        log "no ${PORTAL_YAML} and no PORTAL_CONFIG: the portal has nothing to serve"
        return 0
    fi
    if ! command -v caddy >/dev/null 2>&1; then
        log "caddy not found on PATH: cannot write ${PORTAL_YAML}"
        return 1
    fi
    if ! { mkdir -p "$(dirname "$PORTAL_YAML")" && caddy portal write-config --config "$PORTAL_YAML"; }; then
        log "PORTAL_CONFIG was not written to ${PORTAL_YAML} (error above); caddy will report it too"
    fi
}

start_supervisord() {
    export PORTAL_ROOT PORTAL_YAML INSTANCE_CERT INSTANCE_KEY PORTAL_LOG_DIR \
        PORTAL_STATE_DIR SUPERVISOR_SOCKET SUPERVISOR_PIDFILE WORKSPACE PROVISIONING_LOCK
    mkdir -p "$PORTAL_LOG_DIR" "$(dirname "$SUPERVISOR_SOCKET")" "$(dirname "$SUPERVISOR_PIDFILE")" || return 1
    # The state dir holds the generated token: private from its creation.
    if [[ ! -d $PORTAL_STATE_DIR ]]; then
        mkdir -p "$(dirname "$PORTAL_STATE_DIR")" &&
            (umask 077 && mkdir "$PORTAL_STATE_DIR") || return 1
    fi
    if ! command -v supervisord >/dev/null 2>&1; then
        log "supervisord not found on PATH"
        return 1
    fi
    supervisord -n -c "$SUPERVISOR_CONF" &
    supervisord_pid=$!
    log "supervisord started (pid ${supervisord_pid})"
}

# plog MESSAGE: a line in the container log and in provisioning.log.
plog() {
    log "$*"
    printf '[entrypoint] %s\n' "$*" >>"${PORTAL_LOG_DIR}/provisioning.log" 2>/dev/null
}

# fetch_provisioning URL downloads the script to PROVISIONING_FILE unless a
# copy is already there (so it can be edited in place and the instance
# restarted), with Windows line endings removed.
fetch_provisioning() {
    local url=$1 tmp
    if [[ -s $PROVISIONING_FILE ]]; then
        plog "using ${PROVISIONING_FILE}, downloaded earlier (delete it to download ${url} again)"
        return 0
    fi
    if ! command -v curl >/dev/null 2>&1; then
        plog "PROVISIONING_SCRIPT is a URL but curl is not installed: not provisioning"
        return 1
    fi
    mkdir -p "$(dirname "$PROVISIONING_FILE")" || return 1
    tmp=$(mktemp "${PROVISIONING_FILE}.XXXXXX") || return 1
    if ! curl -fsSL --retry 3 --connect-timeout 20 --max-time 600 -o "$tmp" "$url"; then
        rm -f "$tmp"
        plog "downloading PROVISIONING_SCRIPT ${url} failed: not provisioning"
        return 1
    fi
    sed -i 's/\r$//' "$tmp" && chmod 700 "$tmp" && mv -f "$tmp" "$PROVISIONING_FILE"
}

# run_provisioning runs PROVISIONING_SCRIPT while supervisord already serves
# the portal (so its log can be watched there), unless PROVISIONING_DONE says
# an earlier start completed it. It runs in a session of its own, so a stop
# signal ends it with everything it started; its output goes to
# provisioning.log and the container log.
run_provisioning() {
    local src=${PROVISIONING_SCRIPT:-} script rc
    local -a cmd sink
    [[ -n $src ]] || return 0
    if [[ -e $PROVISIONING_DONE ]]; then
        log "provisioning already completed (${PROVISIONING_DONE} exists)"
        return 0
    fi
    case $src in
    http://* | https://*)
        fetch_provisioning "$src" || return 1
        script=$PROVISIONING_FILE
        ;;
    *)
        script=$src
        if [[ ! -f $script ]]; then
            plog "PROVISIONING_SCRIPT ${script} does not exist: not provisioning"
            return 1
        fi
        ;;
    esac
    cmd=("$script")
    [[ -x $script ]] || cmd=(bash "$script")
    sink=(tee -a "${PORTAL_LOG_DIR}/provisioning.log")
    if command -v log-tee >/dev/null 2>&1; then
        sink=(log-tee "${PORTAL_LOG_DIR}/provisioning.log")
    fi
    plog "provisioning with ${src}; this may take a while, and some apps may wait for it"
    # The session leader is a bash running `script 2>&1 | sink`: killing its
    # process group stops all of them. $1 is how many words the script is.
    # shellcheck disable=SC2016 # expanded by the inner bash
    setsid -w bash -c 'set -o pipefail; n=$1; shift; "${@:1:n}" 2>&1 </dev/null | "${@:n+1}"' \
        provisioning "${#cmd[@]}" "${cmd[@]}" "${sink[@]}" &
    provisioning_pid=$!
    wait_for "$provisioning_pid"
    rc=$?
    provisioning_pid=
    if ((rc == 0)); then
        touch "$PROVISIONING_DONE"
        plog "Provisioning complete"
    elif ((stopping)); then
        plog "provisioning interrupted by the stop; it runs again on the next start"
    else
        plog "provisioning failed (exit ${rc}); startup continues, and it runs again on the next start"
    fi
    return "$rc"
}

# wait_for PID: its exit status. `wait` returns early (>128) when a trapped
# signal arrives; the loop waits again until the process has really ended.
wait_for() {
    local pid=$1 rc
    while :; do
        wait "$pid"
        rc=$?
        if ((rc > 128)) && kill -0 "$pid" 2>/dev/null; then
            continue
        fi
        return "$rc"
    done
}

on_signal() {
    log "received SIG$1: stopping"
    stopping=1
    if [[ -n $provisioning_pid ]]; then
        kill -TERM -- "-${provisioning_pid}" 2>/dev/null
    fi
    if [[ -n $supervisord_pid ]]; then
        kill -TERM "$supervisord_pid" 2>/dev/null
    fi
}

main() {
    local rc
    if (($#)); then
        log "arguments ignored: $*"
    fi
    trap 'on_signal TERM' TERM
    trap 'on_signal INT' INT

    resolve_paths
    write_environment || log "could not write ${PORTAL_ENV_FILE}"

    if ! { mkdir -p "$(dirname "$PROVISIONING_LOCK")" && touch "$PROVISIONING_LOCK"; }; then
        log "could not create the lock ${PROVISIONING_LOCK}"
    fi
    trap 'rm -f "$PROVISIONING_LOCK"' EXIT

    copy_workspace
    ensure_cert
    write_portal_yaml
    ((stopping)) && exit 143

    start_supervisord || exit 1
    ((stopping)) && on_signal TERM # a signal that came before the pid was known
    ((stopping)) || run_provisioning
    rm -f "$PROVISIONING_LOCK"

    wait_for "$supervisord_pid"
    rc=$?
    log "supervisord exited (status ${rc})"
    exit "$rc"
}

main "$@"
