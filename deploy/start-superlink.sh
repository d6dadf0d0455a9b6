#!/usr/bin/env bash
# Start a Flower SuperLink for fedapp in the foreground (systemd, or a terminal).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
    cat <<'USAGE'
Usage: deploy/start-superlink.sh --state DIR [--certs DIR] [--host HOST] [--port PORT] [--in-memory] [--insecure]

Run a SuperLink in the foreground with what an edge federation needs:
  - TLS with DIR/superlink.crt and DIR/superlink.key of --certs (from make-certs.sh);
  - SuperNode authentication: only SuperNodes whose public key was registered
    (deploy/register-nodes.sh) may connect;
  - persistent state in <state>/state.db: registered nodes and run history survive
    a restart (flwr log/list keep working);
  - runtime dependency installation off: runs use this environment's packages and
    nothing is downloaded when a run starts.

--state     the SuperLink's folder (created): state.db, and the working directory
            of every ServerApp it runs (give runs an absolute output-dir)
--certs     folder holding ca.crt, superlink.crt and superlink.key (default: ./certs)
--host      address to listen on (default: 127.0.0.1; 0.0.0.0 for every interface)
--port      port of the Fleet, Control and Runtime APIs, all on one HTTPS port (default: 8000)
--in-memory keep the SuperLink's state in memory instead of <state>/state.db: every
            request of the nodes then skips its SQLite queries (at 10 nodes on one
            2-core machine a round took 2.5 s instead of 4.1 s, docs/performance-cohorts.md),
            but a restart forgets the registered nodes (register them again) and the runs
--insecure  plain HTTP and no SuperNode authentication: only for trying things on one machine

Example:
  deploy/start-superlink.sh --state /var/lib/fedapp/superlink --certs /etc/fedapp/certs --host 0.0.0.0
USAGE
}

state=""
certs="certs"
host="127.0.0.1"
port=8000
in_memory=0
insecure=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --state) state="$2"; shift 2 ;;
        --certs) certs="$2"; shift 2 ;;
        --host) host="$2"; shift 2 ;;
        --port) port="$2"; shift 2 ;;
        --in-memory) in_memory=1; shift ;;
        --insecure) insecure=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage_error "unknown argument '$1' (see --help)" ;;
    esac
done
[[ -n "$state" ]] || usage_error "--state DIR is required (see --help)"
require_port "$port" --port
use_flower

mkdir -p "$state"
state="$(realpath "$state")"
arguments=(--disable-runtime-dependency-installation --host "$host" --port "$port")
[[ $in_memory -eq 1 ]] || arguments+=(--database "$state/state.db")  # without --database Flower keeps it in memory
if [[ $insecure -eq 1 ]]; then
    arguments+=(--insecure)
else
    certs="$(existing_path "$certs" --certs)"
    for file in ca.crt superlink.crt superlink.key; do
        [[ -f "$certs/$file" ]] || die "--certs $certs has no $file; make it with deploy/make-certs.sh"
    done
    arguments+=(--ssl-ca-certfile "$certs/ca.crt" --ssl-certfile "$certs/superlink.crt"
                --ssl-keyfile "$certs/superlink.key" --enable-supernode-auth)
fi

cd "$state"
exec flower-superlink "${arguments[@]}"
