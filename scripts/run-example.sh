#!/usr/bin/env bash
# Runs the portal on examples/portal.yaml from this checkout, with every path
# under ./.run so nothing outside the repository is touched. Usage:
#   scripts/run-example.sh [path/to/caddy]      (make run builds it first)
# Environment variables of the portal (WEB_PASSWORD, ENABLE_HTTPS, …) pass
# through; see README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-bin/caddy}
if [[ ! -x "$bin" ]]; then
  echo "First build: compiling Caddy, its modules and cgo for NVML takes a few minutes."
  CGO_CFLAGS=-Wno-deprecated-declarations go build -ldflags=-linkmode=internal -o "$bin" ./cmd/caddy
fi

run=$PWD/.run
mkdir -p "$run/log" "$run/state"
export PORTAL_LOG_DIR=${PORTAL_LOG_DIR:-$run/log}
export PORTAL_STATE_DIR=${PORTAL_STATE_DIR:-$run/state}
export INSTANCE_CERT=${INSTANCE_CERT:-$run/instance.crt}
export INSTANCE_KEY=${INSTANCE_KEY:-$run/instance.key}
export SUPERVISOR_SOCKET=${SUPERVISOR_SOCKET:-$run/supervisor.sock}
# Caddy's own files (autosave.json, its data directory) stay here too,
# instead of ~/.config/caddy and ~/.local/share/caddy.
export XDG_CONFIG_HOME=$run/xdg-config XDG_DATA_HOME=$run/xdg-data
# Quick tunnels need cloudflared and the internet; opt in with =true.
export PORTAL_DEFAULT_TUNNELS=${PORTAL_DEFAULT_TUNNELS:-false}

config=examples/portal.yaml
# HTTPS without a pair of your own: a throw-away self-signed one under .run,
# made by the same code as the image's boot (never sent to a signer).
if [[ ${ENABLE_HTTPS:-false} == true ]]; then
  INSTANCE_CERT_SIGNER_URL=off "$bin" portal cert ensure
fi
"$bin" portal check --config "$config"
user=${WEB_USERNAME:-vastai}
scheme=http
[[ ${ENABLE_HTTPS:-false} == true ]] && scheme=https

# Serve first, then say where: the banner comes once Caddy says it serves
# the config (every port bound), and a port already taken shows Caddy's error
# instead of the banner.
started=$run/caddy-start.log
: >"$started"
"$bin" run --adapter portal_yaml --config "$config" --watch 2> >(tee "$started" >&2) &
caddy=$!
trap 'kill -TERM "$caddy" 2>/dev/null' INT TERM
for _ in $(seq 1 300); do # at most 60 s
  if ! kill -0 "$caddy" 2>/dev/null; then
    wait "$caddy" && status=0 || status=$?
    echo "The portal did not start (exit status $status): see Caddy's message above." >&2
    exit "$status"
  fi
  grep -q '"serving initial configuration"' "$started" && break
  sleep 0.2
done
token=$("$bin" portal token) # the running portal's, through its admin API

cat <<MSG

Instance Portal is serving. Open the dashboard:

    $scheme://localhost:1111/?token=$token

The token sets a session cookie and disappears from the address bar. Or log
in at the browser's prompt as "$user" with that token as password. From
another shell, the same token: PORTAL_STATE_DIR=$PORTAL_STATE_DIR $bin portal token
Apps: Jupyter :8080, Tensorboard :6006, Syncthing :8384 (each shows a
"starting up" page until the app listens on its internal port).
Logs: $PORTAL_LOG_DIR   State: $PORTAL_STATE_DIR   Stop: Ctrl-C

MSG
wait "$caddy"
