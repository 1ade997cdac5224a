# shellcheck shell=bash
# environment.sh: the instance's editable environment, exported: the
# environment file (/etc/environment, written once per instance by the
# entrypoint; edit it and restart a program to apply) and then
# ${WORKSPACE}/.env, which wins. Sourced by every supervisor program.
__portal_env_flags=$-
set +u -a
# shellcheck source=/dev/null
. "${PORTAL_ENV_FILE:-${PORTAL_ROOT:-}/etc/environment}" 2>/dev/null
if [[ -f ${WORKSPACE:-/workspace}/.env ]]; then
    # shellcheck source=/dev/null
    . "${WORKSPACE:-/workspace}/.env"
fi
set +a
[[ $__portal_env_flags == *u* ]] && set -u
unset __portal_env_flags
