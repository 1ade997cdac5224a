#!/bin/bash
# shellcheck source-path=SCRIPTDIR
# entrypoint.sh: the container's start script (the image's ENTRYPOINT, PID 1).
#
#   1. launch mode: PORTAL_CONFIG adjusted by `caddy portal launch` (/.launch,
#      VAST_TCP_PORT_8080, JUPYTER_OVERRIDE, FORCE_JUPYTER)
#   2. /etc/environment written once per instance (0600, NAME="value"), then
#      it and ${WORKSPACE}/.env are loaded, so a user's edits apply
#   3. the /.provisioning lock, which tells scripts provisioning is under way
#   4. /opt/workspace-internal copied into $WORKSPACE, never over something
#      already there; the workspace handed to the non-root `user`
#   5. root's SSH keys given to `user`
#   6. hooks: /etc/vast_boot.d/first_boot/*.sh once, then /etc/vast_boot.d/*.sh
#   7. the instance certificate (`caddy portal cert ensure`)
#   8. (portal.yaml is written by caddy.sh, its one writer, when missing)
#   9. supervisord, which starts caddy.sh and the other programs
#  10. provisioning, at each start until it succeeds: the manifest
#      (PROVISIONING_MANIFEST, else /provisioning.yaml) by `caddy portal
#      provision`, then PROVISIONING_SCRIPT (path or URL)
#  11. the lock removed; then it waits on supervisord. SIGTERM or SIGINT stop
#      provisioning and supervisord (which stops every program) and the script
#      exits with supervisord's status.
#
# Every fixed path is overridable (docs/boot.md has the table). PORTAL_ROOT
# [empty] prefixes every default path, so a test runs the whole boot inside a
# temporary directory; a variable set on its own wins over the prefix.
set -uo pipefail
shopt -s nullglob
umask 002 # `user` shares the root group: files it must edit are group-writable
# shellcheck source=../lib/boot-image.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/boot-image.sh"

stopping=0
supervisord_pid=
provisioning_pid=

log() { printf '[entrypoint] %s\n' "$*"; }

# resolve_paths sets each path variable that is not already set, from the
# one list of defaults (utils/paths.sh, which also defines portal_wait and
# portal_poll). They are exported only when supervisord starts, so
# /etc/environment records the container's own environment and not these
# defaults.
resolve_paths() {
    # shellcheck source=SCRIPTDIR/../../supervisor-scripts/utils/paths.sh
    . "$(dirname "${BASH_SOURCE[0]}")/../../supervisor-scripts/utils/paths.sh" || return 1
    : "${PORTAL_USER:=user}"
}

# apply_launch runs the launch-mode rules (one Go function, tested there)
# and exports the adjusted PORTAL_CONFIG; caddy prints what it changed.
apply_launch() {
    local out mode cfg
    if ! out=$(caddy portal launch --launch-file "$LAUNCH_FILE" --print mode,portal-config); then
        log "the launch-mode rules failed (above); PORTAL_CONFIG is used as given"
        return 0
    fi
    { IFS= read -r mode && IFS= read -r cfg; } <<<"$out"
    log "launch mode: ${mode}"
    if [[ -n ${PORTAL_CONFIG:-} || -n $cfg ]]; then
        export PORTAL_CONFIG=$cfg
    fi
}

# write_environment records the container environment in the environment
# file, once per instance: the first line names the instance
# (VAST_CONTAINERLABEL), and while it matches the file is kept, so edits
# made on a running instance survive restarts. Lines are NAME="value" (the
# reference's form, read by pam_env and by `set -a; . /etc/environment`),
# with \ " $ and ` escaped so that sourcing never runs anything, and the
# header's label reduced to safe characters. Values spanning lines have no
# such form and are left out, named in the log. 0600:
# it holds secrets (WEB_PASSWORD, CF_TUNNEL_TOKEN...).
write_environment() {
    local file=$PORTAL_ENV_FILE id header first tmp kv name value
    local -a skipped=()
    id=${CONTAINER_ID:-${VAST_CONTAINERLABEL:-${CONTAINER_LABEL:-}}}
    # The header is a comment only while it stays on one line: a newline in
    # the label once put a command on the next one. Labels are C.<number>;
    # anything else is written as _.
    id=${id//[^A-Za-z0-9._-]/_}
    header="# Environment of instance ${id:-(no VAST_CONTAINERLABEL)}, written at its first start by entrypoint.sh; edits are kept."
    if [[ -n $id && -f $file ]] && IFS= read -r first <"$file" && [[ $first == "$header" ]]; then
        log "keeping ${file}, written at this instance's first start"
        return 0
    fi
    mkdir -p "$(dirname "$file")" || return 1
    tmp=$(mktemp "${file}.XXXXXX") || return 1 # mktemp creates it 0600
    {
        printf '%s\n' "$header"
        while IFS= read -r -d '' kv; do
            name=${kv%%=*}
            value=${kv#*=}
            [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
            case $name in
            HOME | SHLVL | PWD | OLDPWD | _) continue ;; # per-shell, not per-container
            esac
            if [[ $value == *$'\n'* ]]; then
                skipped+=("$name")
                continue
            fi
            value=${value//\\/\\\\}
            value=${value//\"/\\\"}
            value=${value//\$/\\\$}
            value=${value//\`/\\\`}
            printf '%s="%s"\n' "$name" "$value"
        done < <(env -0)
    } >"$tmp"
    if ! { chmod 600 "$tmp" && mv -f "$tmp" "$file"; }; then
        rm -f "$tmp"
        return 1
    fi
    log "wrote ${file}"
    if ((${#skipped[@]})); then
        log "not in ${file} (values with newlines): ${skipped[*]}"
    fi
}

# load_environment: the environment file, then ${WORKSPACE}/.env, exported,
# as every program's environment.sh does.
load_environment() {
    set +u -a
    # shellcheck source=/dev/null
    . "$PORTAL_ENV_FILE" 2>/dev/null
    if [[ -f ${WORKSPACE}/.env ]]; then
        # shellcheck source=/dev/null
        . "${WORKSPACE}/.env" || log "${WORKSPACE}/.env failed to load (above)"
    fi
    set -u +a
}

# user_exists: the non-root account of the image (absent in tests).
user_exists() { getent passwd "$PORTAL_USER" >/dev/null 2>&1; }

# copy_workspace fills $WORKSPACE from the image's template directory: each
# top-level item that the workspace lacks is copied; anything already there
# (a volume kept from an earlier run, user files) is left as it is. The
# workspace and what was copied belong to `user` (group root), so that
# account can work there.
copy_workspace() {
    local item target n=0
    local -a copied=()
    mkdir -p "$WORKSPACE" || {
        log "cannot create WORKSPACE ${WORKSPACE}"
        return 1
    }
    if [[ -d $WORKSPACE_TEMPLATE ]]; then
        shopt -s dotglob
        for item in "$WORKSPACE_TEMPLATE"/*; do
            target=${WORKSPACE}/${item##*/}
            [[ -e $target || -L $target ]] && continue
            cp -a "$item" "$target" && copied+=("$target") && n=$((n + 1))
        done
        shopt -u dotglob
        ((n == 0)) || log "copied ${n} item(s) from ${WORKSPACE_TEMPLATE} to ${WORKSPACE}"
    fi
    if user_exists; then
        chown "${PORTAL_USER}:root" "$WORKSPACE" && chmod 2775 "$WORKSPACE"
        ((${#copied[@]} == 0)) || chown -R "${PORTAL_USER}:root" "${copied[@]}"
    fi
}

# propagate_keys appends root's authorized SSH keys that `user` lacks to its
# authorized_keys, so the same key logs in as either account. Root only
# reads its own file; the writing is done as `user` (add_keys), so a link
# in the user's home leads nowhere the user could not write anyway, and
# links and non-regular files (a FIFO would block) are refused outright.
# Each side is bounded by `timeout`.
propagate_keys() {
    local home keys
    [[ -s $ROOT_AUTHORIZED_KEYS ]] && user_exists || return 0
    if [[ -L $ROOT_AUTHORIZED_KEYS || ! -f $ROOT_AUTHORIZED_KEYS ]]; then
        log "not propagating SSH keys: ${ROOT_AUTHORIZED_KEYS} is not a regular file"
        return 1
    fi
    home=${PORTAL_USER_HOME:-$(getent passwd "$PORTAL_USER" | cut -d: -f6)}
    # --sync-home keeps each .ssh in the container (boot_sync_home).
    if [[ -n ${home_ssh_dir:-} && -L ${home}/.ssh && -d ${home_ssh_dir}/${PORTAL_USER}/.ssh ]]; then
        home=${home_ssh_dir}/${PORTAL_USER}
    fi
    keys=$(timeout 5 cat -- "$ROOT_AUTHORIZED_KEYS") || return 1
    printf '%s\n' "$keys" |
        timeout 10 setpriv --reuid="$PORTAL_USER" --regid="$(id -g "$PORTAL_USER")" --init-groups \
            env -i PATH="$PATH" PORTAL_USER="$PORTAL_USER" \
            bash -c "$(declare -f log add_keys); add_keys \"\$1\"" _ "$home" ||
        log "could not give ${PORTAL_USER} root's SSH keys (${home}/.ssh)"
}

# add_keys HOME: run as `user`; appends each key line read from stdin that
# HOME/.ssh/authorized_keys lacks.
add_keys() {
    local ssh=${1}/.ssh line n=0
    local keys=${ssh}/authorized_keys
    if [[ -L $ssh || -L $keys ]] || { [[ -e $keys ]] && [[ ! -f $keys ]]; }; then
        log "not propagating SSH keys: ${ssh} or ${keys} is a link or not a regular file"
        return 1
    fi
    (umask 077 && mkdir -p "$ssh" && touch "$keys") || return 1
    while IFS= read -r line || [[ -n $line ]]; do
        [[ -z $line || $line == \#* ]] && continue
        grep -qxF -- "$line" "$keys" || { printf '%s\n' "$line" >>"$keys" && n=$((n + 1)); }
    done
    chmod 700 "$ssh" && chmod 600 "$keys" || return 1
    ((n == 0)) || log "gave ${PORTAL_USER} ${n} SSH key(s) of root"
}

# run_hook FILE: one hook, in its own bash; a failure is logged with its
# name and the boot goes on.
run_hook() {
    local rc
    log "hook ${1}"
    bash "$1" </dev/null
    rc=$?
    ((rc == 0)) || log "hook ${1} failed (exit ${rc}); the boot goes on"
}

# run_hooks: BOOT_HOOK_DIR/first_boot/*.sh at the first start only, then
# BOOT_HOOK_DIR/*.sh at every start, each in name order.
run_hooks() {
    local hook
    if [[ ! -e $FIRST_BOOT_DONE ]]; then
        for hook in "$BOOT_HOOK_DIR"/first_boot/*.sh; do
            run_hook "$hook"
        done
        touch "$FIRST_BOOT_DONE" || log "cannot create ${FIRST_BOOT_DONE}"
    fi
    for hook in "$BOOT_HOOK_DIR"/*.sh; do
        run_hook "$hook"
    done
}

# ensure_cert: keep a usable instance pair, or make one (signed by the
# console when it answers, else self-signed): Go, so no openssl is needed.
ensure_cert() {
    INSTANCE_CERT=$INSTANCE_CERT INSTANCE_KEY=$INSTANCE_KEY PORTAL_STATE_DIR=$PORTAL_STATE_DIR \
        caddy portal cert ensure 2>&1 | while IFS= read -r line; do log "$line"; done
}

make_dirs() {
    mkdir -p "$PORTAL_LOG_DIR" "$(dirname "$SUPERVISOR_SOCKET")" "$(dirname "$SUPERVISOR_PIDFILE")" || return 1
    # The state dir holds the generated token: private from its creation.
    if [[ ! -d $PORTAL_STATE_DIR ]]; then
        mkdir -p "$(dirname "$PORTAL_STATE_DIR")" &&
            (umask 077 && mkdir "$PORTAL_STATE_DIR") || return 1
    fi
}

# raise_fd_limit: the soft descriptor limit up to the hard one, which every
# program inherits. Docker's soft default (1024) is exhausted by a few
# hundred idle connections; caddy's connection caps (SECURITY.md) are
# derived from the limit it starts with. Raising the soft limit never needs
# a privilege, unlike supervisord's minfds, which aborts when the hard limit
# is below it.
raise_fd_limit() {
    local hard
    hard=$(ulimit -Hn)
    if ulimit -n "$hard" 2>/dev/null; then
        log "descriptor limit: ${hard}"
    fi
}

start_supervisord() {
    raise_fd_limit
    export PORTAL_ROOT PORTAL_YAML INSTANCE_CERT INSTANCE_KEY PORTAL_LOG_DIR PORTAL_STATE_DIR \
        SUPERVISOR_SOCKET SUPERVISOR_PIDFILE WORKSPACE PROVISIONING_LOCK PROVISIONING_DONE PROVISIONING_FAILED \
        PORTAL_ENV_FILE LAUNCH_FILE PROVISIONER_STATE_DIR
    if ! command -v supervisord >/dev/null 2>&1; then
        log "supervisord not found on PATH"
        return 1
    fi
    supervisord -n -c "$SUPERVISOR_CONF" &
    supervisord_pid=$!
    log "supervisord started (pid ${supervisord_pid})"
}

# masked MESSAGE: the message with URL credentials hidden (`caddy portal
# redact`: PROVISIONING_SCRIPT may be https://user:password@…?token=…).
masked() {
    printf '%s\n' "$*" | timeout 10 caddy portal redact 2>/dev/null || echo "(message not shown: caddy portal redact failed)"
}

# plog MESSAGE: a line, credentials masked, in the container log and in
# provisioning.log.
plog() {
    local msg
    msg=$(masked "$*")
    log "$msg"
    printf '[entrypoint] %s\n' "$msg" >>"${PORTAL_LOG_DIR}/provisioning.log" 2>/dev/null
}

# provisioning_failed CODE MESSAGE: says so, and leaves PROVISIONING_FAILED
# (status= and message= lines, masked) for the dashboard; the next start
# tries again.
provisioning_failed() {
    plog "$2"
    printf 'status=%s\nmessage=%s\n' "$1" "$(masked "$2")" >"$PROVISIONING_FAILED" 2>/dev/null
}

# fetch_provisioning URL downloads the script to PROVISIONING_FILE
# (fetch_script), at every start until a run succeeds (a fixed script at the
# same URL is picked up).
fetch_provisioning() {
    if ! command -v curl >/dev/null 2>&1; then
        provisioning_failed download "PROVISIONING_SCRIPT is a URL but curl is not installed: not provisioning"
        return 1
    fi
    fetch_script "$1" "$PROVISIONING_FILE" && return 0
    if [[ -n $fetch_error ]]; then
        provisioning_failed download "downloading PROVISIONING_SCRIPT ${1} failed (${fetch_error}): not provisioning; the next start tries again"
    fi
    return 1
}

# run_provisioning runs PROVISIONING_SCRIPT while supervisord already serves
# the portal (so its log can be watched there), unless PROVISIONING_DONE says
# an earlier start completed it. It runs in a session of its own, so a stop
# signal ends it with everything it started; its output goes to
# provisioning.log and the container log.
run_provisioning() {
    local src=${PROVISIONING_SCRIPT:-} manifest=${PROVISIONING_MANIFEST:-} script rc
    local -a cmd sink
    [[ -n $manifest || ! -f $PROVISIONING_YAML ]] || manifest=$PROVISIONING_YAML
    [[ -n $src || -n $manifest ]] || return 0
    if [[ -e $PROVISIONING_DONE ]]; then
        log "provisioning already completed (${PROVISIONING_DONE} exists)"
        return 0
    fi
    if [[ -n $manifest ]]; then
        run_manifest "$manifest" || return 1
        if [[ -z $src ]]; then
            touch "$PROVISIONING_DONE"
            return 0
        fi
    fi
    case $src in
    http://* | https://*)
        fetch_provisioning "$src" || return 1
        script=$PROVISIONING_FILE
        ;;
    *)
        script=$src
        if [[ ! -f $script ]]; then
            if [[ $src == *[[:space:]\;\&\|]* || $src == '#!'* ]]; then
                provisioning_failed refused "PROVISIONING_SCRIPT holds script text, not a path or URL: refused. Put the script in a file or at an http(s) URL and give that."
            else
                provisioning_failed missing "PROVISIONING_SCRIPT ${script} does not exist: not provisioning"
            fi
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
    portal_wait "$provisioning_pid"
    rc=$?
    provisioning_pid=
    if ((rc == 0)); then
        touch "$PROVISIONING_DONE"
        rm -f "$PROVISIONING_FAILED"
        plog "Provisioning complete"
    elif ((stopping)); then
        plog "provisioning interrupted by the stop; it runs again on the next start"
    else
        provisioning_failed "$rc" "provisioning failed (exit ${rc}); startup continues, and it runs again on the next start"
    fi
    return "$rc"
}

# run_manifest SOURCE: the provisioning manifest (path or URL), by `caddy
# portal provision` in a session of its own (a stop signal ends it with its
# commands); PROVISIONING_SCRIPT runs after it, here. It logs to
# provisioning.log itself and leaves PROVISIONING_FAILED naming the failed
# phase and why; its state (PROVISIONER_STATE_DIR) makes the next start
# resume where it failed.
run_manifest() {
    local rc
    plog "provisioning with the manifest ${1}"
    env -u PROVISIONING_SCRIPT setsid -w caddy portal provision --failed-marker "$PROVISIONING_FAILED" "$1" </dev/null &
    provisioning_pid=$!
    portal_wait "$provisioning_pid"
    rc=$?
    provisioning_pid=
    if ((rc != 0 && stopping)); then
        plog "provisioning interrupted by the stop; it runs again on the next start"
    elif ((rc != 0)); then
        plog "the provisioning manifest failed (exit ${rc}, ${PROVISIONING_FAILED} says where); startup continues, and it runs again on the next start"
    fi
    return "$rc"
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
    trap 'on_signal TERM' TERM
    trap 'on_signal INT' INT

    resolve_paths || exit 1
    boot_custom_script "$@"
    boot_parse_flags "$@"
    if ! command -v caddy >/dev/null 2>&1; then
        log "caddy not found on PATH"
        exit 1
    fi
    boot_cuda
    apply_launch
    boot_hf_home
    write_environment || log "could not write ${PORTAL_ENV_FILE}"
    [[ $flag_export_env == true ]] && load_environment
    boot_thread_caps
    boot_hotfix
    boot_shell_conf

    if ! { mkdir -p "$(dirname "$PROVISIONING_LOCK")" && touch "$PROVISIONING_LOCK"; }; then
        log "could not create the lock ${PROVISIONING_LOCK}"
    fi
    trap 'rm -f "$PROVISIONING_LOCK"' EXIT

    make_dirs || exit 1
    boot_log_dirs
    boot_sync_home
    boot_sync_environment
    copy_workspace
    [[ $flag_user_keys == true ]] && propagate_keys
    run_hooks
    [[ $flag_cert_gen == true ]] && ensure_cert
    ((stopping)) && exit 143

    start_supervisord || exit 1
    ((stopping)) && on_signal TERM # a signal that came before the pid was known
    ((stopping)) || run_provisioning
    rm -f "$PROVISIONING_LOCK"

    portal_wait "$supervisord_pid"
    rc=$?
    log "supervisord exited (status ${rc})"
    exit "$rc"
}

# Run when executed; a test may source the file to call one step.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
