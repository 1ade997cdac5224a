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
  go build -ldflags=-linkmode=internal -o "$bin" ./cmd/caddy
fi

run=$PWD/.run
mkdir -p "$run/log" "$run/state"
export PORTAL_LOG_DIR=${PORTAL_LOG_DIR:-$run/log}
export PORTAL_STATE_DIR=${PORTAL_STATE_DIR:-$run/state}
export INSTANCE_CERT=${INSTANCE_CERT:-$run/instance.crt}
export INSTANCE_KEY=${INSTANCE_KEY:-$run/instance.key}
export SUPERVISOR_SOCKET=${SUPERVISOR_SOCKET:-$run/supervisor.sock}
# Quick tunnels need cloudflared and the internet; opt in with =true.
export PORTAL_DEFAULT_TUNNELS=${PORTAL_DEFAULT_TUNNELS:-false}

config=examples/portal.yaml
"$bin" portal check --config "$config"
token=$("$bin" portal token)
user=${WEB_USERNAME:-vastai}
masked="${token:0:4}…"

cat <<MSG

Instance Portal is starting. Open the dashboard:

    http://localhost:1111/?token=$token

The token sets a session cookie and disappears from the address bar. Or log
in at the browser's prompt as "$user" with the token as password ($masked).
Apps: Jupyter :8080, Tensorboard :6006, Syncthing :8384 (each shows a
"starting up" page until the app listens on its internal port).
Logs: $PORTAL_LOG_DIR   State: $PORTAL_STATE_DIR   Stop: Ctrl-C

MSG
exec "$bin" run --adapter portal_yaml --config "$config" --watch
