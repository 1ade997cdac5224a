#!/bin/bash
# tensorboard.sh: runs TensorBoard when the portal configuration has an app
# named "Tensorboard" (any case: the portal matches names case-insensitively), on
# 127.0.0.1:TENSORBOARD_PORT [16006].
#
# Environment: TENSORBOARD_LOG_DIR [$WORKSPACE], TENSORBOARD_PORT [16006],
# VENV_DIR [/venv/main] (activated when present).
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

portal_program tensorboard
portal_require_app Tensorboard

venv=${VENV_DIR:-${PORTAL_ROOT}/venv/main}
if [[ -f ${venv}/bin/activate ]]; then
    # shellcheck source=/dev/null
    . "${venv}/bin/activate"
fi
portal_require_command tensorboard

logdir=${TENSORBOARD_LOG_DIR:-$WORKSPACE}
mkdir -p "$logdir"
exec tensorboard --host 127.0.0.1 --port "${TENSORBOARD_PORT:-16006}" --logdir "$logdir"
