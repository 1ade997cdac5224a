#!/bin/bash
# shellcheck source-path=SCRIPTDIR
# jupyter.sh: runs Jupyter when portal.yaml has an app named "Jupyter", on
# 127.0.0.1:JUPYTER_PORT [18080], which the portal proxies (port 8080 in the
# default config). Not in Jupyter launch mode: there the platform runs
# Jupyter on 8080 itself (JUPYTER_OVERRIDE=true hands it back to us).
#
# Jupyter asks for no token or password: the portal authenticates every
# request through the external port, and an SSH port forward reaches it
# directly, as on the reference image.
#
# Environment: JUPYTER_TYPE [notebook] (or lab), JUPYTER_PORT [18080],
# JUPYTER_DIR [$WORKSPACE] (the directory it opens), VENV_DIR [/venv/main]
# (activated when present), LAUNCH_FILE [/.launch].
set -u
utils=$(dirname "${BASH_SOURCE[0]}")/utils
# shellcheck source=utils/program.sh
. "${utils}/program.sh"
# shellcheck source=utils/exit_serverless.sh
. "${utils}/exit_serverless.sh"

mode=$(caddy portal launch --launch-file "${LAUNCH_FILE:-${PORTAL_ROOT:-}/.launch}" --print mode 2>/dev/null)
if [[ $mode == jupyter ]]; then
    echo "Refusing to start ${PROC_NAME}: the platform runs Jupyter (Jupyter launch mode; JUPYTER_OVERRIDE=true hands it to this program)"
    exit 0
fi
# shellcheck source=utils/exit_portal.sh
. "${utils}/exit_portal.sh" "Jupyter"

portal_venv_require jupyter

dir=${JUPYTER_DIR:-$WORKSPACE}
mkdir -p "$dir"
cd "$dir" || exit 1

# Each option is given for both Notebook 6 (NotebookApp) and jupyter_server
# (ServerApp, IdentityProvider): a version ignores the class it lacks.
# allow_origin: the browser's Origin is the public address while Host is the
# upstream's, so Jupyter's same-origin check would refuse kernel websockets.
exec jupyter "${JUPYTER_TYPE:-notebook}" \
    --allow-root \
    --no-browser \
    --ip=127.0.0.1 \
    --port="${JUPYTER_PORT:-18080}" \
    --port-retries=0 \
    --NotebookApp.token='' --NotebookApp.password='' \
    --ServerApp.token='' --ServerApp.password='' --IdentityProvider.token='' \
    --NotebookApp.allow_origin='*' --ServerApp.allow_origin='*' \
    --NotebookApp.trust_xheaders=True --ServerApp.trust_xheaders=True \
    --NotebookApp.notebook_dir="$dir" --ServerApp.root_dir="$dir"
