#!/bin/bash
# shellcheck source-path=SCRIPTDIR
# caddy.sh: the supervisor program that runs the Instance Portal, our caddy
# serving portal.yaml through the portal_yaml adapter. --watch applies edits
# to portal.yaml; an edit that does not validate is refused and the running
# config keeps serving.
#
# portal.yaml missing (at the first boot, or removed to regenerate it):
# written from PORTAL_CONFIG with the launch-mode rules (`caddy portal
# launch`); this is its one writer. Caddy's autosave and
# data directory live under PORTAL_STATE_DIR, not in root's home.
set -u
utils=$(dirname "${BASH_SOURCE[0]}")/utils
# shellcheck source=utils/program.sh
. "${utils}/program.sh"
# shellcheck source=utils/exit_serverless.sh
. "${utils}/exit_serverless.sh"

portal_require caddy
if [[ ! -e $PORTAL_YAML ]]; then
    if [[ -z ${PORTAL_CONFIG:-} ]]; then
        echo "neither ${PORTAL_YAML} nor PORTAL_CONFIG exists: nothing to serve; not starting (write one, then: supervisorctl start ${PROC_NAME})"
        exit 0
    fi
    mkdir -p "$(dirname "$PORTAL_YAML")"
    caddy portal launch --launch-file "$LAUNCH_FILE" --write "$PORTAL_YAML" ||
        echo "PORTAL_CONFIG was not written to ${PORTAL_YAML}; caddy will say why"
fi

export XDG_CONFIG_HOME=${PORTAL_STATE_DIR}/caddy/config XDG_DATA_HOME=${PORTAL_STATE_DIR}/caddy/data
echo "Starting Caddy..."
exec caddy run --adapter portal_yaml --config "$PORTAL_YAML" --watch
