# shellcheck shell=bash
# boot-image.sh: the image's own boot steps, sourced by entrypoint.sh (which
# defines log, and the path variables and helpers of utils/paths.sh, first). Each step is one function,
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

# sync_copy SRC DEST: the directory SRC (not a link) copied as it is,
# owners and modes kept, to DEST; a failure is logged and returned.
sync_copy() {
    [[ -d $1 && ! -L $1 ]] || return 0
    mkdir -p "$2" && cp -a "${1}/." "${2}/" && return 0
    log "copying ${1} to ${2} failed"
    return 1
}

# sync_link PATH TARGET: PATH becomes a link to TARGET, what was there
# removed.
sync_link() {
    if [[ -e $1 && ! -L $1 ]]; then rm -rf -- "${1:?}" || return 1; fi
    ln -sfn "$2" "$1"
}

# sync_claim FLAG WHAT DIR FILL OLD: the lock and markers that --sync-home
# and --sync-environment share on the volume, in the reference's shape.
# mkdir DIR is the lock between instances sharing the volume: its winner
# runs FILL DIR between DIR/.syncing (a copy in progress) and DIR/.synced
# (a finished one); when FILL fails, .syncing stays (the tree is partial)
# and what was to be copied stays in the container. Every instance then
# waits for .synced, at most SYNC_WAIT_TIMEOUT [3600] s; a DIR with neither
# marker but OLD present was finished by an image older than the markers,
# and is marked so.
sync_claim() {
    local flag=$1 what=$2 dir=$3 fill=$4 old=$5
    if mkdir "$dir" 2>/dev/null; then
        log "${flag}: copying ${what} to ${dir}"
        touch "${dir}/.syncing"
        if ! "$fill" "$dir"; then
            log "${flag}: ${what} stay in the container; delete ${dir} so that the next start copies it again"
            return 1
        fi
        touch "${dir}/.synced" && rm -f "${dir}/.syncing"
    fi
    if ! portal_poll "${SYNC_WAIT_TIMEOUT:-3600}" 30 log "${flag}: waiting for another instance to finish ${dir}" \
        sync_synced "$dir" "$old"; then
        # shellcheck disable=SC2154 # portal_waited: set by portal_poll (utils/paths.sh)
        log "${flag}: ${dir} is not complete after ${portal_waited}s (an instance stopped while copying?): ${what} stay in the container. Delete ${dir} (not only its markers) so that the next start copies it again."
        return 1
    fi
}

# sync_synced DIR OLD: DIR/.synced is there, or is written now for a DIR
# with neither marker but OLD present (see sync_claim).
sync_synced() {
    [[ -f ${1}/.synced ]] && return 0
    [[ ! -f ${1}/.syncing && -e $2 ]] || return 1
    touch "${1}/.synced" 2>/dev/null
    return 0
}

# boot_sync_home (--sync-home): /root and each /home/<name> live on the
# workspace volume, in the reference's layout, and follow the user to the
# next instance:
#
#   ${WORKSPACE}/home/{root,<name>}   copied once (sync_claim), then linked
#                                     from /root and /home/<name>
#   /home_ssh/{root,<name>}/.ssh      each .ssh, kept in the container (SSH
#                                     keys are the instance's) and linked
#                                     back into the home on the volume
#
# The files the host writes into /root for this instance (onstart.sh,
# .vast_containerlabel, ports.log, .vast_api_key) stay in the container
# too, at the reference's places, linked from /root; the host's
# per-instance lines are removed from the shared /root/.bashrc.
boot_sync_home() {
    local r=${PORTAL_ROOT:-} dir name home pair
    [[ $flag_sync_home == true ]] || return 0
    home_ssh_dir=${r}/home_ssh
    mkdir -p "$home_ssh_dir" && chmod 755 "$home_ssh_dir" || return 1
    for home in "${r}/root" "${r}"/home/*; do
        [[ -d $home && ! -L $home ]] || continue
        name=${home##*/}
        mkdir -p "${home_ssh_dir}/${name}" "${home}/.ssh" &&
            chmod 700 "${home_ssh_dir}/${name}" "${home}/.ssh" &&
            chown --reference="$home" "${home_ssh_dir}/${name}" "${home}/.ssh" &&
            mv -T "${home}/.ssh" "${home_ssh_dir}/${name}/.ssh" 2>/dev/null
    done
    for pair in onstart.sh:/onstart.sh .vast_containerlabel:/etc/.vast_containerlabel \
        ports.log:/var/log/vast_ports.log .vast_api_key:/etc/.vast_api_key; do
        [[ -f ${r}/root/${pair%%:*} && ! -L ${r}/root/${pair%%:*} ]] && mv -f "${r}/root/${pair%%:*}" "${r}${pair#*:}"
        [[ -e ${r}${pair#*:} ]] && ln -sfn "${pair#*:}" "${r}/root/${pair%%:*}"
    done
    dir=${WORKSPACE}/home
    if sync_claim --sync-home "the home directories" "$dir" sync_home_fill "${dir}/root"; then
        for home in "$dir"/*/; do
            home=${home%/}
            name=${home##*/}
            if [[ $name == root ]]; then sync_link "${r}/root" "$home"; else sync_link "${r}/home/${name}" "$home"; fi
        done
        sed -i -E '/^(DIRECT_PORT_START|DIRECT_PORT_END|VAST_CONTAINERLABEL)=/d' "${r}/root/.bashrc" 2>/dev/null
        log "--sync-home: /root and /home/* are on the volume (${dir})"
    fi
    for dir in "$home_ssh_dir"/*/; do
        dir=${dir%/}
        name=${dir##*/}
        home=${r}/home/${name}
        [[ $name == root ]] && home=${r}/root
        [[ -d $home ]] && sync_link "${home}/.ssh" "${dir}/.ssh"
    done
    return 0
}

# sync_home_fill DIR: the home directories, copied into DIR.
sync_home_fill() {
    local home rc=0
    for home in "${PORTAL_ROOT:-}/root" "${PORTAL_ROOT:-}"/home/*; do
        sync_copy "$home" "${1}/${home##*/}" || rc=1
    done
    return "$rc"
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
    local r=${PORTAL_ROOT:-} sync_dir env_id env_dir dir
    [[ $flag_sync_environment == true ]] || return 0
    sync_dir=${WORKSPACE}/.environment_sync
    env_id=${ENV_ID:-$(cat "${r}/.env_hash" 2>/dev/null || caddy portal env-hash --root "${r:-/}")}
    if [[ ! $env_id =~ ^[A-Za-z0-9._-]+$ ]]; then
        log "--sync-environment: no usable environment hash (${env_id}); the environments stay in the image"
        return 1
    fi
    env_dir=${sync_dir}/${env_id}
    mkdir -p "$sync_dir" || return 1
    sync_claim --sync-environment "the environments" "$env_dir" sync_environment_fill "${env_dir}/venv/main" || return 1
    for dir in "${env_dir}"/venv/*/; do
        dir=${dir%/}
        sync_link "${r}/venv/${dir##*/}" "$dir"
    done
    sync_link "${r}/.uv" "${env_dir}/uv"
    if [[ -e ${r}/opt/nvm || -L ${r}/opt/nvm ]]; then sync_link "${r}/opt/nvm" "${env_dir}/nvm"; fi
    log "--sync-environment: /venv, /.uv and /opt/nvm are on the volume (${env_dir})"
}

# sync_environment_fill DIR: the environments, copied into DIR.
sync_environment_fill() {
    local r=${PORTAL_ROOT:-} venv rc=0
    mkdir -p "${1}/venv" "${1}/uv" "${1}/nvm" || return 1
    sync_copy "${r}/.uv" "${1}/uv" || rc=1
    sync_copy "${r}/opt/nvm" "${1}/nvm" || rc=1
    for venv in "${r}"/venv/*/; do
        venv=${venv%/}
        if [[ -f ${venv}/pyvenv.cfg ]]; then sync_copy "$venv" "${1}/venv/${venv##*/}" || rc=1; fi
    done
    return "$rc"
}
