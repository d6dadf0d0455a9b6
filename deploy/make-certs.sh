#!/usr/bin/env bash
# Make a private certificate authority (CA) and a TLS certificate for the SuperLink.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
    cat <<'USAGE'
Usage: deploy/make-certs.sh [--out DIR] [--hosts NAMES] [--days N] [--force]

Make the TLS material of a fedapp federation in DIR (default: ./certs):

  ca.crt          the CA certificate: copy it to every SuperNode and CLI user
  ca.key          the CA's private key: keep it off the servers (it signs certificates)
  superlink.crt   the SuperLink's certificate, signed by the CA
  superlink.key   the SuperLink's private key (stays on the SuperLink host)
  operator.crt    the operator's client certificate, signed by the CA: with operator.key,
  operator.key    it opens the Control API behind start-superlink.sh --public-address
                  (mTLS); keep both with whoever may submit runs

--hosts  comma-separated host names and IP addresses the SuperNodes and the CLI
         use to reach the SuperLink; each becomes a subjectAltName, and a client
         connecting by any other name is refused (default: localhost,127.0.0.1,::1);
         localhost and 127.0.0.1 are always added, for the SuperLink's own ServerApp
--days   validity of the certificates in days (default: 365)
--force  replace an existing SuperLink and operator certificate (an existing CA is always
         reused, so SuperNodes that trust it keep working)

Keys are ECDSA P-256. Example for a SuperLink reachable as fl.example.org and 10.0.0.5:
  deploy/make-certs.sh --out certs --hosts fl.example.org,10.0.0.5
USAGE
}

out="certs"
hosts="localhost,127.0.0.1,::1"
days=365
force=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        --hosts) hosts="$2"; shift 2 ;;
        --days) days="$2"; shift 2 ;;
        --force) force=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage_error "unknown argument '$1' (see --help)" ;;
    esac
done
[[ "$days" =~ ^[1-9][0-9]*$ ]] || usage_error "--days '$days' is not allowed; allowed: a whole number >= 1"
command -v openssl >/dev/null || die "openssl is not installed"

san=""
IFS=',' read -r -a names <<<"$hosts"
# The SuperLink's own SuperExec and ServerApp processes reach it on loopback (start-superlink.sh binds it there).
for name in "${names[@]}" localhost 127.0.0.1; do
    [[ -n "$name" ]] || continue
    if [[ "$name" =~ ^[0-9.]+$ || "$name" == *:* ]]; then
        [[ ",$san," == *",IP:$name,"* ]] || san+="${san:+,}IP:$name"
    elif [[ "$name" =~ ^[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]]; then
        [[ ",$san," == *",DNS:$name,"* ]] || san+="${san:+,}DNS:$name"
    else
        usage_error "--hosts entry '$name' is neither a host name nor an IP address"
    fi
done
[[ -n "${names[*]}" ]] || usage_error "--hosts is empty; allowed: comma-separated host names and IP addresses"

mkdir -p "$out"
if [[ -e "$out/superlink.crt" && $force -eq 0 ]]; then
    die "$out/superlink.crt already exists; pass --force to replace it"
fi

if [[ -f "$out/ca.key" && -f "$out/ca.crt" ]]; then
    echo "reusing the CA in $out/ca.crt"
else
    (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out/ca.key" 2>/dev/null)
    openssl req -x509 -new -key "$out/ca.key" -sha256 -days "$days" -subj "/O=fedapp/CN=fedapp federation CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$out/ca.crt"
    echo "made the CA: $out/ca.crt (private key: $out/ca.key)"
fi

extensions="$(mktemp)"
trap 'rm -f "$extensions" "$out"/*.csr' EXIT

# sign NAME SUBJECT EXTENSIONS...: a fresh P-256 key NAME.key and its certificate NAME.crt, signed by the CA.
sign() {
    local name="$1" subject="$2"
    shift 2
    printf '%s\n' "$@" "subjectKeyIdentifier = hash" "authorityKeyIdentifier = keyid,issuer" >"$extensions"
    (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out/$name.key" 2>/dev/null)
    openssl req -new -key "$out/$name.key" -subj "$subject" -out "$out/$name.csr"
    openssl x509 -req -in "$out/$name.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial \
        -days "$days" -sha256 -extfile "$extensions" -out "$out/$name.crt" 2>/dev/null
}

sign superlink "/O=fedapp/CN=${names[0]}" "basicConstraints = critical,CA:FALSE" \
    "keyUsage = critical,digitalSignature" "extendedKeyUsage = serverAuth" "subjectAltName = $san"
echo "made the SuperLink certificate: $out/superlink.crt for ${san//,/, } (private key: $out/superlink.key)"
sign operator "/O=fedapp/CN=fedapp operator" "basicConstraints = critical,CA:FALSE" \
    "keyUsage = critical,digitalSignature" "extendedKeyUsage = clientAuth"
echo "made the operator's client certificate: $out/operator.crt (private key: $out/operator.key)"
