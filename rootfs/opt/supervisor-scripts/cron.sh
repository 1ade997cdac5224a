#!/bin/bash
# shellcheck source-path=SCRIPTDIR
# cron.sh: runs cron in the foreground, in every launch mode, so crontabs
# written by templates and users run. Its own messages go to syslog.
set -u
utils=$(dirname "${BASH_SOURCE[0]}")/utils
# shellcheck source=utils/logging.sh
. "${utils}/logging.sh"
# shellcheck source=utils/cleanup_generic.sh
. "${utils}/cleanup_generic.sh"
# shellcheck source=utils/environment.sh
. "${utils}/environment.sh"

if ! command -v cron >/dev/null 2>&1; then
    echo "cron is not installed; not starting"
    exit 0
fi
exec cron -f
