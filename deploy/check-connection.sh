#!/usr/bin/env bash
# Check that a flwr connection reaches its SuperLink, and say why not.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
    cat <<'USAGE'
Usage: deploy/check-connection.sh NAME

Try the flwr connection NAME (from $FLWR_HOME/config.toml) with `flwr ls NAME`. When
Flower answers only "Connection to the SuperLink is unavailable", probe the SuperLink's
address and name the likely cause: nothing listening, TLS on one side only, or a
certificate that does not verify against the connection's CA.
USAGE
}

[[ "${1:-}" != -h && "${1:-}" != --help ]] || { usage; exit 0; }
[[ $# -eq 1 ]] || { usage >&2; exit 2; }
name="$1"
use_flower

if output="$(flwr ls "$name" --format json 2>&1)" && [[ "$output" == *'"success": true'* ]]; then
    echo "connection '$name' works"
    exit 0
fi
echo "connection '$name' fails: $output" >&2
echo "likely cause: $(cd "$REPO_DIR" && python -m deploy check-connection "$name")" >&2
exit 1
