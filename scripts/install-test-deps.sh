#!/usr/bin/env bash
# Installs, as root, the Debian packages the tests need when they are
# missing: supervisord (boot, processes and dashboard tests), chromium
# (dashboard test), shellcheck (lint), openssl (test certificates),
# mmdebstrap (the image test builds a Debian root with it), curl (the boot
# test serves PROVISIONING_SCRIPT as a URL), openssh-client (the SSH hint is
# checked with `ssh -G`), jupyter-notebook (the boot test starts a real
# Jupyter through the image's wrapper in entrypoint mode), prometheus
# (promtool checks /metrics; a real Prometheus scrapes two portals). wrk is only for
# bench/: pass --bench to add it.
set -euo pipefail

need=()
command -v supervisord >/dev/null 2>&1 || need+=(supervisor)
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
command -v jupyter-notebook >/dev/null 2>&1 || need+=(jupyter-notebook)
# node and npm run the third-party clients of the agent tests (the MCP
# TypeScript SDK, an OpenAPI 3.1 validator), which those tests npm-install.
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
if [[ "${1:-}" == "--bench" ]]; then
  command -v wrk >/dev/null 2>&1 || need+=(wrk)
fi

if ((${#need[@]} == 0)); then
  exit 0
fi
if [[ "$(id -u)" != 0 ]]; then
  echo "missing Debian packages: ${need[*]} (run as root, or: sudo apt-get install ${need[*]})" >&2
  exit 1
fi
echo "installing: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
