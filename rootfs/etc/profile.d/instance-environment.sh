# shellcheck shell=sh
# instance-environment.sh: the instance's shell, the one the reference's
# templates expect, for SSH logins (root and `user`), Jupyter terminals and
# `ssh host 'cmd'` alike. Login shells read it from /etc/profile.d; the image
# puts it first in /etc/bash.bashrc for the others (before that file's
# return for non-interactive shells). POSIX sh up to the bash-only part.
#
#   umask 0002           `user` shares the root group
#   the environment      /etc/environment (root-only: it holds secrets; an
#                        SSH login gets it through pam_env), then
#                        ${WORKSPACE}/.env; not with --no-export-env
#   nvm                  ${NVM_DIR}/nvm.sh, so node and npm are on PATH
#   the venv             /venv/${ACTIVE_VENV:-main} activated; not with
#                        --no-activate-pyenv
#   the workspace        an interactive shell that starts in $HOME or /
#                        moves to $WORKSPACE
#
# The boot writes the flags' effect to INSTANCE_SHELL_CONF
# [/etc/instance-shell.conf] at each start. Loaded once per shell.
if [ -z "${__instance_shell_loaded:-}" ]; then
    __instance_shell_loaded=1
    umask 0002
    INSTANCE_EXPORT_ENV=true
    INSTANCE_ACTIVATE_VENV=true
    if [ -r "${INSTANCE_SHELL_CONF:-/etc/instance-shell.conf}" ]; then
        # shellcheck source=/dev/null
        . "${INSTANCE_SHELL_CONF:-/etc/instance-shell.conf}"
    fi
    if [ "$INSTANCE_EXPORT_ENV" != false ]; then
        set -a
        if [ -r "${PORTAL_ENV_FILE:-/etc/environment}" ]; then
            # shellcheck source=/dev/null
            . "${PORTAL_ENV_FILE:-/etc/environment}"
        fi
        if [ -r "${WORKSPACE:-/workspace}/.env" ]; then
            # shellcheck source=/dev/null
            . "${WORKSPACE:-/workspace}/.env"
        fi
        set +a
    fi
    if [ -n "${BASH_VERSION:-}" ]; then
        if [ -r "${NVM_DIR:-/opt/nvm}/nvm.sh" ]; then
            # shellcheck source=/dev/null
            . "${NVM_DIR:-/opt/nvm}/nvm.sh"
        fi
        # By PATH, not VIRTUAL_ENV: a nested shell inherits VIRTUAL_ENV but
        # has just reloaded PATH from the environment file.
        case ":${PATH}:" in
        *":/venv/${ACTIVE_VENV:-main}/bin:"*) ;;
        *)
            if [ "$INSTANCE_ACTIVATE_VENV" != false ] && [ -r "/venv/${ACTIVE_VENV:-main}/bin/activate" ]; then
                # shellcheck source=/dev/null
                . "/venv/${ACTIVE_VENV:-main}/bin/activate"
            fi
            ;;
        esac
        case $- in
        *i*)
            if [ "$PWD" = "${HOME:-/}" ] || [ "$PWD" = / ]; then
                cd "${WORKSPACE:-/workspace}" 2>/dev/null || true
            fi
            if [ -e "${PROVISIONING_LOCK:-/.provisioning}" ]; then
                printf '\033[91m>>>\033[0m Provisioning is still running: some software may not be ready yet.\n\033[91m>>>\033[0m Progress: /var/log/portal/provisioning.log or the Instance Portal.\n'
            fi
            ;;
        esac
    fi
    unset INSTANCE_EXPORT_ENV INSTANCE_ACTIVATE_VENV
fi
