#!/bin/bash
# jupyter.sh: runs Jupyter when the portal configuration has an app named
# "Jupyter", on 127.0.0.1:JUPYTER_PORT [18080] (the internal port the
# default PORTAL_CONFIG proxies :8080 to).
#
# Jupyter itself asks for no token or password: the portal authenticates
# every request that reaches it through the external port, and an SSH port
# forward reaches it directly, as on the reference image. It listens on
# 127.0.0.1 only.
#
# Environment: JUPYTER_TYPE [notebook] (or lab), JUPYTER_PORT [18080],
# JUPYTER_DIR [$WORKSPACE] (the directory it opens), VENV_DIR [/venv/main]
# (activated when present).
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

portal_program jupyter
portal_require_app Jupyter

# In the reference image's "Jupyter launch mode" the platform starts Jupyter
# itself through /.launch; a second one would fight it for the port.
launch=${PORTAL_ROOT}/.launch
if [[ -f $launch ]] && grep -qi jupyter "$launch"; then
    portal_say "Jupyter is started by ${launch}; not starting"
    exit 0
fi

venv=${VENV_DIR:-${PORTAL_ROOT}/venv/main}
if [[ -f ${venv}/bin/activate ]]; then
    # shellcheck source=/dev/null
    . "${venv}/bin/activate"
fi
portal_require_command jupyter

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
