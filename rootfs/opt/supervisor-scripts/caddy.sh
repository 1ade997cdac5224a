#!/bin/bash
# caddy.sh: the supervisor program that runs the Instance Portal, which is our
# caddy binary serving portal.yaml through the portal_yaml adapter. --watch
# applies edits to portal.yaml; an edit that does not validate is refused and
# the running config keeps serving.
#
# Environment: PORTAL_YAML [/etc/portal.yaml], PORTAL_CONFIG (writes
# PORTAL_YAML when the file is missing), PORTAL_LOG_DIR [/var/log/portal];
# everything else is read by caddy itself (see docs/boot.md).
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

portal_program caddy
portal_require_command caddy

# Removing portal.yaml and restarting this program regenerates it from
# PORTAL_CONFIG, as on the reference image.
if [[ ! -e $PORTAL_YAML && -n ${PORTAL_CONFIG:-} ]]; then
    mkdir -p "$(dirname "$PORTAL_YAML")"
    caddy portal write-config --config "$PORTAL_YAML" ||
        portal_say "PORTAL_CONFIG does not parse; caddy will report why"
fi
if [[ ! -e $PORTAL_YAML && -z ${PORTAL_CONFIG:-} ]]; then
    portal_say "neither ${PORTAL_YAML} nor PORTAL_CONFIG exists: nothing to serve; not starting (write one, then: supervisorctl start ${PORTAL_PROGRAM})"
    exit 0
fi

portal_say "Starting Caddy..."
exec caddy run --adapter portal_yaml --config "$PORTAL_YAML" --watch
