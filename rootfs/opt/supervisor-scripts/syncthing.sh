#!/bin/bash
# shellcheck source-path=SCRIPTDIR
# syncthing.sh: runs Syncthing when portal.yaml has an app named
# "Syncthing", its GUI on 127.0.0.1:<that app's internal_port> (the portal
# proxies it; the default config maps 8384 to 18384). It runs as the
# non-root account SYNCTHING_USER [user] when that exists (Syncthing warns
# when run as root), with its configuration in that account's home.
#
# Through the portal the GUI needs Host: localhost:<port>, which the image
# sets with CADDY_HEADER_UP_LOCALHOST.
set -u
utils=$(dirname "${BASH_SOURCE[0]}")/utils
# shellcheck source=utils/logging.sh
. "${utils}/logging.sh"
# shellcheck source=utils/cleanup_generic.sh
. "${utils}/cleanup_generic.sh"
# shellcheck source=utils/environment.sh
. "${utils}/environment.sh"
# shellcheck source=utils/exit_portal.sh
. "${utils}/exit_portal.sh" "Syncthing"

if ! command -v syncthing >/dev/null 2>&1; then
    echo "syncthing is not installed; not starting"
    exit 0
fi
port=$(caddy portal app Syncthing --config "$PORTAL_YAML" --print internal_port) || exit 1

# No self-upgrade (the image pins it), no default folder in the user's home.
export STNOUPGRADE=1 STNODEFAULTFOLDER=1
run_as=()
account=${SYNCTHING_USER:-user}
if [[ $(id -u) == 0 ]] && entry=$(getent passwd "$account"); then
    IFS=: read -r _ _ uid gid _ home _ <<<"$entry"
    export HOME=$home USER=$account
    run_as=(setpriv "--reuid=${uid}" "--regid=${gid}" --init-groups)
else
    echo "no account ${account}: running Syncthing as $(id -un)"
fi
echo "Starting Syncthing, GUI on 127.0.0.1:${port}"
exec "${run_as[@]}" syncthing serve --no-browser --gui-address="127.0.0.1:${port}"
