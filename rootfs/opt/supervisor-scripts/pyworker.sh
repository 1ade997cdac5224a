#!/bin/bash
# shellcheck source-path=SCRIPTDIR
# pyworker.sh: Vast's serverless worker, with the reference's wrapper
# semantics:
#   - always hidden from the portal's process list (skip marker);
#   - not serverless (SERVERLESS is not true): exits 0 after 6 s;
#   - SUPERVISOR_SKIP_PYWORKER=true: the same, an escape hatch;
#   - /root/onstart.sh already starts pyworker: the same;
#   - otherwise waits for provisioning to finish (PROVISIONING_LOCK), then
#     runs the bootstrap script PYWORKER_BOOTSTRAP_URL (pyworker's
#     start_server.sh), fetched at each start.
set -u
utils=$(dirname "${BASH_SOURCE[0]}")/utils
# shellcheck source=utils/program.sh
. "${utils}/program.sh"

portal_skip_mark "$PROC_NAME"

skip() {
    echo "Skipping ${PROC_NAME} startup ($1)"
    sleep "${PORTAL_SKIP_SLEEP:-6}"
    exit 0
}
[[ ${SERVERLESS:-} == [Tt][Rr][Uu][Ee] ]] || skip "not serverless"
[[ ${SUPERVISOR_SKIP_PYWORKER:-} == [Tt][Rr][Uu][Ee] ]] && skip "SUPERVISOR_SKIP_PYWORKER=true"
onstart=${PORTAL_ROOT:-}/root/onstart.sh
if [[ -f $onstart ]] && grep -qE 'pyworker|start_server\.sh' "$onstart"; then
    skip "handled by ${onstart}"
fi

lock=${PROVISIONING_LOCK:-${PORTAL_ROOT:-}/.provisioning}
while [[ -e $lock ]]; do
    echo "${PROC_NAME} startup paused (provisioning)..."
    sleep 5
done

url=${PYWORKER_BOOTSTRAP_URL:-https://raw.githubusercontent.com/vast-ai/pyworker/main/start_server.sh}
echo "Starting ${PROC_NAME} from ${url}"
script=$(mktemp) || exit 1
trap 'rm -f "$script"' EXIT
if ! curl -fsSL --retry 3 --retry-connrefused --connect-timeout 20 --max-time 300 -o "$script" "$url"; then
    echo "${PROC_NAME}: could not fetch ${url}"
    exit 1
fi
bash "$script"
