#!/usr/bin/env bash
# Make SuperNode key pairs for SuperNode authentication.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
    cat <<'USAGE'
Usage: deploy/make-node-keys.sh [--out DIR] NAME...

Make one key pair per SuperNode NAME in DIR (default: ./keys), in the format Flower
1.41 requires (ECDSA, OpenSSH format):

  NAME      the private key: copy it to that SuperNode only (start-supernode.sh --key)
  NAME.pub  the public key: register it on the SuperLink (register-nodes.sh)

An existing key is never replaced. Example:
  deploy/make-node-keys.sh --out keys hospital-a hospital-b
USAGE
}

out="keys"
names=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        -*) usage_error "unknown argument '$1' (see --help)" ;;
        *) names+=("$1"); shift ;;
    esac
done
[[ ${#names[@]} -gt 0 ]] || usage_error "name at least one SuperNode (see --help)"
command -v ssh-keygen >/dev/null || die "ssh-keygen is not installed (package openssh-client)"

mkdir -p "$out"
for name in "${names[@]}"; do
    [[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || usage_error "name '$name' is not allowed; allowed: letters, digits, '.', '_' and '-'"
    if [[ -e "$out/$name" ]]; then
        echo "kept the existing key $out/$name"
        continue
    fi
    ssh-keygen -q -t ecdsa -b 384 -N "" -C "$name" -f "$out/$name"
    echo "made $out/$name (private, for the SuperNode) and $out/$name.pub (register it on the SuperLink)"
done
