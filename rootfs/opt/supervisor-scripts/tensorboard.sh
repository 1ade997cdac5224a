#!/bin/bash
# shellcheck source-path=SCRIPTDIR
# tensorboard.sh: runs TensorBoard when portal.yaml has an app named
# "Tensorboard" (any case), on 127.0.0.1:TENSORBOARD_PORT [16006].
#
# Environment: TENSORBOARD_LOG_DIR [$WORKSPACE], TENSORBOARD_PORT [16006],
# VENV_DIR [/venv/main] (activated when present).
set -u
utils=$(dirname "${BASH_SOURCE[0]}")/utils
# shellcheck source=utils/logging.sh
. "${utils}/logging.sh"
# shellcheck source=utils/cleanup_generic.sh
. "${utils}/cleanup_generic.sh"
# shellcheck source=utils/environment.sh
. "${utils}/environment.sh"
# shellcheck source=utils/exit_serverless.sh
. "${utils}/exit_serverless.sh"
# shellcheck source=utils/exit_portal.sh
. "${utils}/exit_portal.sh" "Tensorboard"

venv=${VENV_DIR:-${PORTAL_ROOT:-}/venv/main}
if [[ -f ${venv}/bin/activate ]]; then
    # shellcheck source=/dev/null
    . "${venv}/bin/activate"
fi
if ! command -v tensorboard >/dev/null 2>&1; then
    echo "tensorboard is not installed; not starting (install it in ${venv}, then: supervisorctl start ${PROC_NAME})"
    exit 0
fi

logdir=${TENSORBOARD_LOG_DIR:-$WORKSPACE}
mkdir -p "$logdir"
exec tensorboard --host 127.0.0.1 --port "${TENSORBOARD_PORT:-16006}" --logdir "$logdir"
