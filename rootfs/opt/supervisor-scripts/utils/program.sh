# shellcheck shell=bash
# program.sh: the start of each of this image's own supervisor programs,
# the three template utils in the order a template sources them
# (logging.sh, cleanup_generic.sh, environment.sh), and two helpers:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/utils/program.sh"
#
# Templates keep sourcing the utils one by one, as on the reference.

# shellcheck source=SCRIPTDIR/logging.sh
. "${BASH_SOURCE[0]%/*}/logging.sh"
# shellcheck source=SCRIPTDIR/cleanup_generic.sh
. "${BASH_SOURCE[0]%/*}/cleanup_generic.sh"
# shellcheck source=SCRIPTDIR/environment.sh
. "${BASH_SOURCE[0]%/*}/environment.sh"

# portal_require CMD [HINT]: CMD not on PATH: says so (and HINT, in
# parentheses) and exits 0, which supervisord leaves EXITED.
portal_require() {
    command -v "$1" >/dev/null 2>&1 && return 0
    echo "$1 is not installed; not starting${2:+ ($2)}"
    exit 0
}

# portal_venv_require CMD: activates the virtual environment VENV_DIR
# [/venv/main] when it has one, then portal_require CMD, saying where to
# install it.
portal_venv_require() {
    local venv=${VENV_DIR:-${PORTAL_ROOT:-}/venv/main}
    if [[ -f ${venv}/bin/activate ]]; then
        # shellcheck source=/dev/null
        . "${venv}/bin/activate"
    fi
    portal_require "$1" "install it in ${venv}, then: supervisorctl start ${PROC_NAME}"
}
