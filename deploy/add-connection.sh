#!/usr/bin/env bash
# Add (or replace) a SuperLink connection for the `flwr` CLI in $FLWR_HOME/config.toml.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
    cat <<'USAGE'
Usage: deploy/add-connection.sh --name NAME --address HOST:PORT (--ca FILE | --insecure)

Write the connection [superlink.NAME] into $FLWR_HOME/config.toml (default
~/.flwr/config.toml), replacing an earlier entry of that name and keeping all others.
Then `flwr run . NAME --stream`, `flwr ls NAME` and `flwr supernode ... NAME` talk
to that SuperLink.

--address   the SuperLink as host:port; with TLS, the host must be one of the names
            in its certificate (make-certs.sh --hosts)
--ca        the CA certificate that signed the SuperLink's certificate (ca.crt)
--insecure  plain HTTP, for a SuperLink started with --insecure

Example:
  deploy/add-connection.sh --name edge --address fl.example.org:8000 --ca certs/ca.crt
USAGE
}

name=""
address=""
ca=""
insecure=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --name) name="$2"; shift 2 ;;
        --address) address="$2"; shift 2 ;;
        --ca) ca="$2"; shift 2 ;;
        --insecure) insecure=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage_error "unknown argument '$1' (see --help)" ;;
    esac
done
[[ "$name" =~ ^[A-Za-z0-9_-]+$ ]] || usage_error "--name '$name' is not allowed; allowed: letters, digits, '_' and '-'"
[[ "$address" =~ ^.+:[0-9]+$ ]] || usage_error "--address '$address' is not allowed; allowed: host:port"
if [[ $insecure -eq 1 ]]; then
    [[ -z "$ca" ]] || usage_error "--ca and --insecure exclude each other"
    entry="address = \"$address\"
insecure = true"
else
    [[ -n "$ca" ]] || usage_error "--ca FILE or --insecure is required"
    entry="address = \"$address\"
root-certificates = \"$(existing_path "$ca" --ca)\""
fi
use_flower

flwr config list >/dev/null  # creates Flower's default config.toml if there is none
config="${FLWR_HOME:-$HOME/.flwr}/config.toml"
updated="$(mktemp "$config.XXXXXX")"
awk -v header="[superlink.$name]" '
    $0 == header { skipping = 1; next }
    skipping && /^\[/ { skipping = 0 }
    !skipping { print }
' "$config" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' >"$updated"
printf '\n[superlink.%s]\n%s\n' "$name" "$entry" >>"$updated"
chmod 600 "$updated"
mv "$updated" "$config"
echo "wrote connection '$name' ($address) to $config"
