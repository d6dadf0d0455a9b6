#!/usr/bin/env bash
# Register SuperNode public keys on a running SuperLink, so those SuperNodes may connect.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
    cat <<'USAGE'
Usage: deploy/register-nodes.sh --connection NAME KEY.pub...

Register each public key with the SuperLink behind the flwr connection NAME (see
add-connection.sh) and print the node id Flower gives it. A key registered before
is reported and left as it is. To revoke a node later, with the node id printed here
(`flwr supernode list NAME` lists ids and status, not names):

  flwr supernode unregister NODE_ID NAME   # it is refused from then on

Example:
  deploy/register-nodes.sh --connection edge keys/hospital-a.pub keys/hospital-b.pub
USAGE
}

connection=""
keys=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --connection) connection="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        -*) usage_error "unknown argument '$1' (see --help)" ;;
        *) keys+=("$1"); shift ;;
    esac
done
[[ -n "$connection" ]] || usage_error "--connection NAME is required (see --help)"
[[ ${#keys[@]} -gt 0 ]] || usage_error "give at least one public key file (see --help)"
use_flower

status=0
for key in "${keys[@]}"; do
    [[ "$key" == *.pub && -f "$key" ]] || die "'$key' is not a public key file (NAME.pub from make-node-keys.sh)"
    output="$(flwr supernode register "$key" "$connection" --name "$(basename "$key" .pub)" --format json 2>&1)" || true
    if [[ "$output" =~ \"node-id\":\ *([0-9]+) ]]; then
        echo "registered $key as node ${BASH_REMATCH[1]}"
    elif [[ "$output" == *"already in use"* ]]; then
        echo "$key is already known to the SuperLink: registered before, or revoked (a revoked key cannot be registered again; give that node a new key pair)"
    else
        echo "error: registering $key failed: $output" >&2
        status=1
    fi
done
exit $status
