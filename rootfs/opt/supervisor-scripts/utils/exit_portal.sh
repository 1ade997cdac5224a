# shellcheck shell=bash
# exit_portal.sh "App Name": sourced by a supervisor program to run only
# when its app is in portal.yaml, the list of wanted apps:
#
#   . /opt/supervisor-scripts/utils/exit_portal.sh "ComfyUI"
#
# - waits up to PORTAL_YAML_WAIT [120] seconds for a non-empty PORTAL_YAML
#   [/etc/portal.yaml], then exits 1;
# - app absent (key or display name, any case, exact or as part of a name):
#   prints "Skipping $PROC_NAME startup (not in $PORTAL_YAML)", writes the
#   marker $PORTAL_SKIP_DIR/$PROC_NAME [/tmp/supervisor-skip], which the
#   portal's processes view reads, sleeps 6 s (so that autorestart=true does
#   not spin) and exits 0;
# - app present: removes the marker and returns;
# - SERVERLESS=true: returns at once.
# The lookup is `caddy portal app`, which parses the file.
__portal_app=${1:-}
if [[ -z $__portal_app ]]; then
    echo "exit_portal.sh: no application name given"
    exit 1
fi
if [[ ${SERVERLESS:-} == [Tt][Rr][Uu][Ee] ]]; then
    # shellcheck disable=SC2317 # reached when run rather than sourced
    return 0 2>/dev/null || exit 0
fi
# shellcheck source=SCRIPTDIR/paths.sh
. "${BASH_SOURCE[0]%/*}/paths.sh"
__portal_skip_dir=$PORTAL_SKIP_DIR

if ! portal_poll "${PORTAL_YAML_WAIT:-120}" 10 echo "Waiting for ${PORTAL_YAML} before starting ${PROC_NAME}..." \
    test -s "$PORTAL_YAML"; then
    echo "${PROC_NAME}: ${PORTAL_YAML} is still missing or empty after ${portal_waited}s; not starting (write it, then: supervisorctl start ${PROC_NAME})"
    exit 1
fi

caddy portal app "$__portal_app" --config "$PORTAL_YAML"
case $? in
0)
    rm -f "${__portal_skip_dir}/${PROC_NAME}"
    ;;
1)
    echo "Skipping ${PROC_NAME} startup (not in ${PORTAL_YAML})"
    portal_skip_mark "$PROC_NAME" "$__portal_app"
    sleep "${PORTAL_SKIP_SLEEP:-6}" &
    wait $!
    exit 0
    ;;
*)
    echo "${PROC_NAME}: cannot read ${PORTAL_YAML} (above); not starting"
    exit 1
    ;;
esac
unset __portal_app __portal_skip_dir portal_waited
