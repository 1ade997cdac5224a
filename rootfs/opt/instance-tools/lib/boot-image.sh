# shellcheck shell=bash
# boot-image.sh: the image's own boot steps, sourced by entrypoint.sh (which
# defines log and the path variables first). Each step is one function,
# called from entrypoint.sh's main in the reference's order; the decisions
# that parse or compute live in `caddy portal …` subcommands. docs/boot.md
# lists each reference boot step and flag beside ours.

# boot_parse_flags sets the flag_* variables from the container's arguments
# (the reference's boot flags). A flag with no meaning in this image is
# accepted and says so; an unknown one is named and ignored.
# shellcheck disable=SC2034 # the flags are read by entrypoint.sh
boot_parse_flags() {
    flag_user_keys=true
    flag_export_env=true
    flag_cert_gen=true
    flag_activate_pyenv=true
    flag_sync_environment=false
    flag_sync_home=false
    local a
    for a in "$@"; do
        case $a in
        --no-user-keys) flag_user_keys=false ;;
        --no-export-env) flag_export_env=false ;;
        --no-cert-gen) flag_cert_gen=false ;;
        --no-activate-pyenv) flag_activate_pyenv=false ;;
        --sync-environment) flag_sync_environment=true ;;
        --sync-home) flag_sync_home=true ;;
        --jupyter-override) export JUPYTER_OVERRIDE=true ;;
        --no-force-jupyter) export FORCE_JUPYTER=false ;;
        --no-agent-banner) export ENABLE_AGENT_BANNER=false ;;
        --no-forward-compat) export DISABLE_FORWARD_COMPAT=true ;;
        --no-update-portal)
            log "flag ${a}: accepted; nothing to do here (the portal is this image's binary and never updates itself from the network)"
            continue
            ;;
        --no-update-vast)
            log "flag ${a}: accepted; nothing to do here (the vastai CLI is the image's and is never updated at boot)"
            continue
            ;;
        *)
            log "unknown flag ${a}: ignored"
            continue
            ;;
        esac
        log "flag ${a}"
    done
}

# fetch_script URL DEST: downloads URL (http, https or file) to DEST,
# executable, Windows line endings removed, retried and bounded in time.
# On failure DEST is untouched and fetch_error says why.
fetch_script() {
    local url=$1 dest=$2 tmp
    fetch_error=
    if ! command -v curl >/dev/null 2>&1; then
        fetch_error="curl is not installed"
        return 1
    fi
    mkdir -p "$(dirname "$dest")" || return 1
    tmp=$(mktemp "${dest}.XXXXXX") || return 1
    if ! fetch_error=$(curl -fsSL --retry "${PROVISIONING_RETRIES:-3}" --retry-delay 5 --retry-connrefused \
        --connect-timeout 20 --max-time "${PROVISIONING_DOWNLOAD_TIMEOUT:-600}" -o "$tmp" "$url" 2>&1); then
        rm -f "$tmp"
        fetch_error=${fetch_error//$'\n'/ }
        return 1
    fi
    sed -i 's/\r$//' "$tmp" && chmod 700 "$tmp" && mv -f "$tmp" "$dest"
}

# boot_custom_script: BOOT_SCRIPT (a URL) replaces this whole boot, as on
# the reference: fetched once to BOOT_CUSTOM_SCRIPT
# [/opt/instance-tools/bin/boot_custom.sh], which then runs at every start
# with the container's arguments. A failed download is logged and the
# default boot goes on.
boot_custom_script() {
    local custom=${BOOT_CUSTOM_SCRIPT:-${PORTAL_ROOT:-}/opt/instance-tools/bin/boot_custom.sh}
    if [[ -n ${BOOT_SCRIPT:-} && ! -f $custom ]]; then
        if fetch_script "$BOOT_SCRIPT" "$custom"; then
            log "BOOT_SCRIPT saved as ${custom}"
        else
            log "BOOT_SCRIPT ${BOOT_SCRIPT} could not be fetched (${fetch_error}): the default boot goes on"
        fi
    fi
    if [[ -f $custom ]]; then
        log "running ${custom} in place of the default boot"
        exec "$custom" "$@"
    fi
}

# boot_hotfix: HOTFIX_SCRIPT (a URL) runs early at every start, as on the
# reference, its output also in HOTFIX_LOG [/var/log/hotfix.log]. It manages
# its own run conditions; its failure is logged and the boot goes on.
boot_hotfix() {
    local script rc
    [[ -n ${HOTFIX_SCRIPT:-} ]] || return 0
    script=$(mktemp -d)/hotfix.sh || return 1
    if ! fetch_script "$HOTFIX_SCRIPT" "$script"; then
        log "HOTFIX_SCRIPT ${HOTFIX_SCRIPT} could not be fetched (${fetch_error}): not applied"
        return 1
    fi
    log "applying HOTFIX_SCRIPT ${HOTFIX_SCRIPT}"
    "$script" </dev/null 2>&1 | tee -a "${HOTFIX_LOG:-${PORTAL_ROOT:-}/var/log/hotfix.log}"
    rc=${PIPESTATUS[0]}
    rm -rf "$(dirname "$script")"
    ((rc == 0)) || log "HOTFIX_SCRIPT failed (exit ${rc}); the boot goes on"
}

# boot_hf_home: HF_HOME on the workspace unless set, as the reference sets
# it (before the environment file is written, so shells see it too).
boot_hf_home() {
    export HF_HOME=${HF_HOME:-${WORKSPACE}/.hf_home}
    mkdir -p "$HF_HOME" 2>/dev/null || log "cannot create HF_HOME ${HF_HOME}"
}

# boot_shell_conf writes INSTANCE_SHELL_CONF, which every shell of the
# instance reads (/etc/profile.d/instance-environment.sh): this start's
# --no-export-env, --no-activate-pyenv and --no-agent-banner. Rewritten at
# each start, so a flag removed from the template stops applying.
boot_shell_conf() {
    local conf=${INSTANCE_SHELL_CONF:-${PORTAL_ROOT:-}/etc/instance-shell.conf}
    {
        printf '# The instance shell'"'"'s settings, written by entrypoint.sh at each start from its flags.\n'
        printf 'INSTANCE_EXPORT_ENV=%s\n' "$flag_export_env"
        printf 'INSTANCE_ACTIVATE_VENV=%s\n' "$flag_activate_pyenv"
        if [[ ${ENABLE_AGENT_BANNER:-} == false ]]; then
            printf 'export ENABLE_AGENT_BANNER=false\n'
        fi
    } >"${conf}.tmp" && chmod 0644 "${conf}.tmp" && mv -f "${conf}.tmp" "$conf" && return 0
    log "cannot write ${conf}"
}

# boot_thread_caps: the CPU thread caps (`caddy portal threads`) in the
# environment file's managed block, and in this shell, so that supervisord
# and every program inherit them; a block that no longer applies is
# removed and its variables unset here.
boot_thread_caps() {
    local op kv
    while read -r op kv; do
        case $op in
        set) export "${kv?}" ;;
        unset) unset "${kv?}" ;;
        esac
    done < <(caddy portal threads --env-file "$PORTAL_ENV_FILE" --dotenv "${WORKSPACE}/.env")
}

# boot_log_dirs: PORTAL_LOG_DIR world-writable with the sticky bit (1777),
# so programs running as `user` write their logs there; and the clean
# copies (/var/log/NAME.log, written by log-tee) of programs that run as
# another account made for it, as the reference's 11-log-dirs.sh does.
boot_log_dirs() {
    local conf account name
    chmod 1777 "$PORTAL_LOG_DIR" 2>/dev/null || log "cannot chmod 1777 ${PORTAL_LOG_DIR}"
    for conf in "$(dirname "$SUPERVISOR_CONF")"/conf.d/*.conf; do
        account=$(sed -n 's/^[[:space:]]*user[[:space:]]*=[[:space:]]*\([^[:space:]]*\).*/\1/p' "$conf" | head -n 1)
        [[ -n $account ]] || continue
        name=$(basename "$conf" .conf)
        touch "$(dirname "$PORTAL_LOG_DIR")/${name}.log" 2>/dev/null &&
            chown "$account" "$(dirname "$PORTAL_LOG_DIR")/${name}.log" 2>/dev/null
    done
    return 0
}

# boot_cuda: CUDA forward compatibility (`caddy portal cuda-compat`), when
# the host driver is older than the image's newest toolkit. Nothing to do
# without an NVIDIA driver. CUDA_DRIVER_VERSION_FILE
# [/proc/driver/nvidia/version] is where the driver's version is read.
boot_cuda() {
    local line
    caddy portal cuda-compat --root "${PORTAL_ROOT:-/}" \
        --driver-version-file "${CUDA_DRIVER_VERSION_FILE:-/proc/driver/nvidia/version}" 2>&1 |
        while IFS= read -r line; do log "$line"; done
}

# boot_sync_environment (--sync-environment): the image's Python
# environments (/venv/*), uv's directory (/.uv) and nvm (/opt/nvm) live on
# the workspace volume and follow the user to the next instance, in the
# reference's layout:
#
#   ${WORKSPACE}/.environment_sync/<env hash>/{venv/<name>,uv,nvm}
#
# The env hash (/.env_hash, `caddy portal env-hash`) names what made them,
# so an image with other libraries gets its own directory instead of a venv
# it cannot run. mkdir of that directory is the lock between instances
# sharing the volume; .syncing marks a copy in progress, .synced a finished
# one, and every instance waits for .synced (at most SYNC_WAIT_TIMEOUT
# [3600] s, then it leaves /venv alone and says what to delete) before
# linking /venv/<name>, /.uv and /opt/nvm to it.
boot_sync_environment() {
    local r=${PORTAL_ROOT:-} sync_dir env_id env_dir dir name waited=0
    [[ $flag_sync_environment == true ]] || return 0
    sync_dir=${WORKSPACE}/.environment_sync
    env_id=${ENV_ID:-$(cat "${r}/.env_hash" 2>/dev/null || caddy portal env-hash --root "${r:-/}")}
    if [[ ! $env_id =~ ^[A-Za-z0-9._-]+$ ]]; then
        log "--sync-environment: no usable environment hash (${env_id}); the environments stay in the image"
        return 1
    fi
    env_dir=${sync_dir}/${env_id}
    mkdir -p "$sync_dir" || return 1
    if mkdir "$env_dir" 2>/dev/null; then
        log "--sync-environment: copying the environments to ${env_dir}"
        touch "${env_dir}/.syncing"
        mkdir -p "${env_dir}/venv" "${env_dir}/uv" "${env_dir}/nvm"
        [[ -d ${r}/.uv && ! -L ${r}/.uv ]] && cp -a "${r}/.uv/." "${env_dir}/uv/"
        [[ -d ${r}/opt/nvm && ! -L ${r}/opt/nvm ]] && cp -a "${r}/opt/nvm/." "${env_dir}/nvm/"
        for dir in "${r}"/venv/*/; do
            dir=${dir%/}
            [[ -f ${dir}/pyvenv.cfg && ! -L $dir ]] || continue
            cp -a "${dir}" "${env_dir}/venv/" || log "--sync-environment: copying ${dir} failed"
        done
        touch "${env_dir}/.synced" && rm -f "${env_dir}/.syncing"
    fi
    while [[ ! -f ${env_dir}/.synced ]]; do
        if ((waited >= ${SYNC_WAIT_TIMEOUT:-3600})); then
            log "--sync-environment: ${env_dir} is not complete after ${waited}s (an instance stopped while copying?): /venv is left in the image. Delete ${env_dir} so that the next start copies it again."
            return 1
        fi
        ((waited % 30 == 0)) && log "--sync-environment: waiting for another instance to finish ${env_dir}"
        sleep 1
        waited=$((waited + 1))
    done
    for dir in "${env_dir}"/venv/*/; do
        dir=${dir%/}
        name=${dir##*/}
        [[ -L ${r}/venv/${name} ]] || rm -rf -- "${r}/venv/${name:?}"
        ln -sfn "$dir" "${r}/venv/${name}"
    done
    if [[ ! -L ${r}/.uv ]]; then rm -rf -- "${r}/.uv"; fi
    ln -sfn "${env_dir}/uv" "${r}/.uv"
    if [[ -d ${r}/opt/nvm || -L ${r}/opt/nvm ]]; then
        [[ -L ${r}/opt/nvm ]] || rm -rf -- "${r}/opt/nvm"
        ln -sfn "${env_dir}/nvm" "${r}/opt/nvm"
    fi
    log "--sync-environment: /venv, /.uv and /opt/nvm are on the volume (${env_dir})"
}
