#!/bin/bash
# shellcheck source-path=SCRIPTDIR
# tensorboard.sh: runs TensorBoard when portal.yaml has an app named
# "Tensorboard" (any case), on 127.0.0.1:TENSORBOARD_PORT [16006].
#
# Environment: TENSORBOARD_LOG_DIR [$WORKSPACE], TENSORBOARD_PORT [16006],
# VENV_DIR [/venv/main] (activated when present).
set -u
utils=$(dirname "${BASH_SOURCE[0]}")/utils
# shellcheck source=utils/program.sh
. "${utils}/program.sh"
# shellcheck source=utils/exit_serverless.sh
. "${utils}/exit_serverless.sh"
# shellcheck source=utils/exit_portal.sh
. "${utils}/exit_portal.sh" "Tensorboard"

portal_venv_require tensorboard

logdir=${TENSORBOARD_LOG_DIR:-$WORKSPACE}
mkdir -p "$logdir"
exec tensorboard --host 127.0.0.1 --port "${TENSORBOARD_PORT:-16006}" --logdir "$logdir"
