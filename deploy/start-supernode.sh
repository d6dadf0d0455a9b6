#!/usr/bin/env bash
# Start a Flower SuperNode for fedapp in the foreground: one edge node training on its own data.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
    cat <<'USAGE'
Usage: deploy/start-supernode.sh --superlink HOST:PORT --data-path PATH [--name NAME]
                                 [--ca FILE --key FILE | --insecure] [--port PORT]
                                 [--executor warm|flower] [--node-config 'k=v ...']
                                 [--poll-min SECONDS] [--poll-max SECONDS]

Run a SuperNode in the foreground. It connects to the SuperLink over TLS, proves its
identity with its private key, and trains on the local dataset at --data-path, which
never leaves this machine.

--superlink    the SuperLink's address as host:port; the host must be one of the names
               in the SuperLink's certificate (make-certs.sh --hosts)
--data-path    this node's dataset: a .parquet file, a folder of .parquet files, or an
               image folder <path>/<label>/<image> (python -m deploy node-data writes demo data)
--name         the node's stable name, by which the server orders and samples nodes
               (default: the data path)
--ca           the federation's CA certificate, ca.crt from make-certs.sh (default: ./certs/ca.crt)
--key          this node's private key from make-node-keys.sh; its .pub must be
               registered on the SuperLink (deploy/register-nodes.sh)
--port         port of this node's local Runtime API on 127.0.0.1, where its ClientApp
               processes fetch their work (default: 9094); every SuperNode on one host
               needs its own
--executor     how ClientApp messages run (default: warm): `warm` forks each message's
               process from one that has Flower and torch loaded (python -m
               deploy.warm_executor, the SuperNode in --isolation process); `flower` is
               Flower's own SuperExec, a fresh flwr-clientapp process per message
--node-config  more node-config entries, e.g. 'partition-id=0 num-partitions=2' instead
               of --data-path for a demo share of the run's dataset
--poll-min     seconds between the node's first polls of the SuperLink after a message
               (default 0.1); every empty poll waits 1.25 times longer, up to
               --poll-max (default 3, Flower's fixed interval). The SuperNode runs
               through python -m deploy.supernode, which sets these waits in Flower's
               SuperNode loop (see docs/performance-cohorts.md for the load on the SuperLink)
--insecure     plain HTTP, no key: only against a SuperLink started with --insecure

Before it starts, the node probes --superlink once with its TLS settings and stops
with one line when they cannot work: --insecure against a SuperLink that speaks TLS,
TLS against a plain one, or a certificate not signed by --ca (or not naming the host).
A SuperLink that does not answer yet is no error: the node starts and keeps retrying.

Example:
  deploy/start-supernode.sh --superlink fl.example.org:8000 --ca /etc/fedapp/ca.crt \
      --key /etc/fedapp/node-key --data-path /srv/fedapp/data --name hospital-a
USAGE
}

superlink=""
data_path=""
name=""
ca="certs/ca.crt"
key=""
port=9094
executor="warm"
extra=""
insecure=0
pacing=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --superlink) superlink="$2"; shift 2 ;;
        --data-path) data_path="$2"; shift 2 ;;
        --name) name="$2"; shift 2 ;;
        --ca) ca="$2"; shift 2 ;;
        --key) key="$2"; shift 2 ;;
        --port) port="$2"; shift 2 ;;
        --executor) executor="$2"; shift 2 ;;
        --node-config) extra="$2"; shift 2 ;;
        --poll-min|--poll-max) pacing+=("$1" "$2"); shift 2 ;;
        --insecure) insecure=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage_error "unknown argument '$1' (see --help)" ;;
    esac
done
[[ -n "$superlink" ]] || usage_error "--superlink HOST:PORT is required (see --help)"
[[ -n "$data_path" || -n "$extra" ]] || usage_error "--data-path PATH (or --node-config with partition-id/num-partitions) is required"
require_port "$port" --port
[[ "$executor" == warm || "$executor" == flower ]] || usage_error "--executor '$executor' is not allowed; allowed: warm, flower"
[[ -z "$name" || "$name" =~ ^[A-Za-z0-9._-]+$ ]] || usage_error "--name '$name' is not allowed; allowed: letters, digits, '.', '_' and '-'"
[[ "$data_path" != *'"'* ]] || usage_error "--data-path must not contain a double quote"
use_flower

node_config=""
if [[ -n "$data_path" ]]; then
    node_config="data-path=\"$(existing_path "$data_path" --data-path)\""
fi
[[ -z "$name" ]] || node_config+=" node-name=\"$name\""
node_config="${node_config# } $extra"

arguments=(--superlink "$superlink" --port "$port" --node-config "${node_config% }")
if [[ $insecure -eq 1 ]]; then
    arguments+=(--insecure)
    probe=(--insecure)
else
    [[ -n "$key" ]] || usage_error "--key FILE is required (or --insecure against an insecure SuperLink)"
    ca="$(existing_path "$ca" --ca)"
    arguments+=(--root-certificates "$ca" --auth-supernode-private-key "$(existing_path "$key" --key)")
    probe=(--ca "$ca")
fi
# Pre-flight: Flower retries forever against a SuperLink that speaks TLS when the node does
# not (and fails obscurely on a wrong CA); stop here with one line naming the cause instead.
# Nothing listening is not a mistake (the SuperLink may start later): that is said once, and the node starts.
python -m deploy.tls_probe --superlink "$superlink" "${probe[@]}" || exit 1

if [[ "$executor" == warm ]]; then
    # Started before `exec`, so its parent is the SuperNode (this PID): it exits with it.
    # The SuperNode rings the executor's doorbell (a named pipe) when a task is waiting.
    # Made here, before both processes start, so that no ring is lost while the executor imports torch.
    doorbell="$(mktemp -d "${TMPDIR:-/tmp}/fedapp-supernode.XXXXXX")/doorbell"
    mkfifo -m 600 "$doorbell"
    python -m deploy.warm_executor --runtime-api-address "127.0.0.1:$port" --parent-pid $$ --doorbell "$doorbell" &
    arguments+=(--isolation process)
    pacing+=(--doorbell "$doorbell")
else
    # Flower's SuperExec looks for new ClientApp tasks every second by default.
    export FLWR_SUPEREXEC_TASK_POLL_INTERVAL="${FLWR_SUPEREXEC_TASK_POLL_INTERVAL:-0.1}"
fi
# Flower's SuperNode, with its hard-coded waits re-timed (deploy/supernode.py).
exec python -m deploy.supernode "${pacing[@]}" "${arguments[@]}"
