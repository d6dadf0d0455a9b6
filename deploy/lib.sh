# Shared by the deploy/*.sh scripts (sourced, not run).
# shellcheck shell=bash

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$DEPLOY_DIR")"

die() { echo "error: $*" >&2; exit 1; }
usage_error() { echo "error: $*" >&2; exit 2; }

# Put Flower's commands on PATH: the project's .venv first (the SuperLink and SuperNode
# start flower-superexec, flwr-serverapp and flwr-clientapp from PATH), and keep them
# offline-friendly (no telemetry, no update check).
use_flower() {
    if [[ -x "$REPO_DIR/.venv/bin/flower-superlink" ]]; then
        PATH="$REPO_DIR/.venv/bin:$PATH"
    fi
    command -v flower-superlink >/dev/null \
        || die "flower-superlink is not on PATH: run 'make test' once in $REPO_DIR, or activate the environment fedapp is installed in"
    export PATH FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1
}

# The absolute form of a path that must exist.
existing_path() {
    [[ -e "$1" ]] || die "$2 '$1' does not exist"
    realpath "$1"
}

require_port() {
    [[ "$1" =~ ^[0-9]+$ && "$1" -ge 1 && "$1" -le 65535 ]] || usage_error "$2 '$1' is not allowed; allowed: a port number 1-65535"
}
