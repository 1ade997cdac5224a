#!/bin/bash
# shellcheck source-path=SCRIPTDIR
# cron.sh: runs cron in the foreground, in every launch mode, so crontabs
# written by templates and users run. Its own messages go to syslog.
set -u
utils=$(dirname "${BASH_SOURCE[0]}")/utils
# shellcheck source=utils/program.sh
. "${utils}/program.sh"

portal_require cron
exec cron -f
