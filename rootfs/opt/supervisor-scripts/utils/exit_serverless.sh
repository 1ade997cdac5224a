# shellcheck shell=bash
# exit_serverless.sh: sourced by a supervisor program that must not run on
# a serverless worker (the portal and its tunnels, Jupyter, Syncthing,
# TensorBoard), as templates do:
#
#   . /opt/supervisor-scripts/utils/exit_serverless.sh
#
# SERVERLESS=true (any case): prints "Skipping $PROC_NAME startup
# (Serverless)", sleeps 6 s (so that autorestart does not spin) and exits 0.
# Otherwise it returns and the program goes on.
if [[ ${SERVERLESS:-} == [Tt][Rr][Uu][Ee] ]]; then
    echo "Skipping ${PROC_NAME:-${0##*/}} startup (Serverless)"
    sleep "${PORTAL_SKIP_SLEEP:-6}"
    exit 0
fi
