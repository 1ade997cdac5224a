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
#
# As on the reference: the GUI's API key is the instance token (`caddy
# portal token`), so `curl -H "X-API-Key: $OPEN_BUTTON_TOKEN"
# …/rest/system/status` works (given to Syncthing in its environment, not on
# its command line, where every local user could read it); the sync
# listeners are set at each start to tcp://0.0.0.0:${VAST_TCP_PORT_72299}
# (the mapped port; none without it) and the relays, with NAT traversal off.
set -u
utils=$(dirname "${BASH_SOURCE[0]}")/utils
# shellcheck source=utils/program.sh
. "${utils}/program.sh"
# shellcheck source=utils/exit_serverless.sh
. "${utils}/exit_serverless.sh"
# shellcheck source=utils/exit_portal.sh
. "${utils}/exit_portal.sh" "Syncthing"

portal_require syncthing
port=$(caddy portal app Syncthing --config "$PORTAL_YAML" --print internal_port) || exit 1

# configure_listeners PORT: once the GUI answers (up to a minute), sets the
# listen addresses through the REST API, the key sent from a private file.
configure_listeners() {
    local gui=http://127.0.0.1:$1 hdr addrs i
    addrs='"dynamic+https://relays.syncthing.net/endpoint"'
    if [[ ${VAST_TCP_PORT_72299:-} =~ ^[0-9]+$ ]]; then
        addrs="\"tcp://0.0.0.0:${VAST_TCP_PORT_72299}\",${addrs}"
    else
        echo "syncthing: VAST_TCP_PORT_72299 is not set: no direct TCP listener, relays only (map port 72299 in the template for direct connections)"
    fi
    hdr=$(mktemp) || return 1
    printf 'X-API-Key: %s\n' "$STGUIAPIKEY" >"$hdr"
    for ((i = 0; i < 120; i++)); do
        if curl -fs -o /dev/null -H "@${hdr}" "${gui}/rest/system/ping"; then
            curl -fsS -o /dev/null -X PATCH -H "@${hdr}" -H 'Content-Type: application/json' \
                --data "{\"listenAddresses\":[${addrs}],\"natEnabled\":false}" "${gui}/rest/config/options" &&
                echo "syncthing: listen addresses set: ${addrs}"
            break
        fi
        sleep 0.5
    done
    rm -f "$hdr"
}

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
if key=$(caddy portal token 2>/dev/null) && [[ -n $key ]]; then
    export STGUIAPIKEY=$key
    configure_listeners "$port" &
fi
echo "Starting Syncthing, GUI on 127.0.0.1:${port}"
exec "${run_as[@]}" syncthing serve --no-browser --gui-address="127.0.0.1:${port}"
