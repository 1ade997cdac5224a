# shellcheck shell=sh
# instance-environment.sh: shells load the instance's editable environment,
# as supervisor programs do (utils/environment.sh): the environment file
# (/etc/environment, root-only as it holds secrets), then ${WORKSPACE}/.env.
# Login shells read this from /etc/profile.d; the image adds it to
# /etc/bash.bashrc for the others. POSIX sh: dash reads profile.d too.
if [ -r "${PORTAL_ENV_FILE:-/etc/environment}" ]; then
    set -a
    # shellcheck source=/dev/null
    . "${PORTAL_ENV_FILE:-/etc/environment}"
    if [ -r "${WORKSPACE:-/workspace}/.env" ]; then
        # shellcheck source=/dev/null
        . "${WORKSPACE:-/workspace}/.env"
    fi
    set +a
fi
