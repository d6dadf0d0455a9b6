#!/usr/bin/env bash
# A whole edge federation on this machine: one SuperLink and N SuperNodes on loopback.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
    cat <<'USAGE'
Usage: deploy/local-cluster.sh up [--nodes N] [--insecure] [--dir DIR] [--port PORT]
                                  [--base-port PORT] [--connection NAME] [--executor warm|flower]
                                  [--poll-min SECONDS] [--poll-max SECONDS] [--superlink-in-memory]
                                  [--data DIR | --data PATH,PATH,...] [--proxy]
       deploy/local-cluster.sh down [--dir DIR]
       deploy/local-cluster.sh status [--dir DIR]

up      starts a SuperLink and N SuperNodes (default 2) on 127.0.0.1 with the same
        scripts and settings as a real deployment: TLS with a fresh CA, SuperNode
        authentication with one registered key per node, and each node training on
        its own data folder (its share of the embedded MNIST, written once, or the
        data --data names). It then
        writes the flwr connection NAME (default: local-cluster), so that
            flwr run . NAME --stream -c 'output-dir="/absolute/path"'
        submits to it, and waits until every node is online.
down    stops exactly the processes `up` started (by PID), with their SuperExec,
        ServerApp and ClientApp children.
status  shows which of them run and what the SuperLink knows about the nodes.

--nodes       number of SuperNodes (default: 2)
--insecure    plain HTTP and no node authentication
--dir         the cluster's folder (default: $FLWR_HOME/fedapp/local-cluster, FLWR_HOME
              defaulting to ~/.flwr): certs/, keys/, data/, superlink/ (state.db) and
              run/ with every PID file and log
--port        the SuperLink's port (default: a free one)
--base-port   node i's local Runtime API listens on base-port + i (default: free ones)
--connection  name of the flwr connection to write (default: local-cluster)
--executor    how the nodes run ClientApp messages (default: warm; see start-supernode.sh)
--poll-min, --poll-max
              how the nodes poll the SuperLink (see start-supernode.sh; defaults 0.1 and 3)
--superlink-in-memory
              the SuperLink keeps its state in memory, not in superlink/state.db
              (see start-superlink.sh --in-memory: faster, forgotten on restart)
--data        each node's own data instead of MNIST shares: a folder DIR, node i reading
              DIR/node-<i> (as `python -m deploy node-data --out DIR` writes it), or N
              comma-separated paths, node i reading the i-th (any --data-path of
              start-supernode.sh); every path must exist
--proxy       put nginx in front of the SuperLink as on a real server (start-superlink.sh
              --public-address 127.0.0.1:<free port>): the nodes connect through it
              (Fleet API only) and its Control API needs certs/operator.crt; the flwr
              connection, like an operator on the SuperLink host, uses the SuperLink's own port

Nothing is downloaded; runs use this project's .venv.
USAGE
}

START_TIMEOUT=60
ONLINE_TIMEOUT=120
STOP_TIMEOUT=20

command="${1:-}"
[[ -n "$command" ]] || { usage; exit 2; }
shift
case "$command" in
    up|down|status) ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown command '$command'; allowed: up, down, status (see --help)" ;;
esac

nodes=2
insecure=0
dir="${FLWR_HOME:-$HOME/.flwr}/fedapp/local-cluster"
port=""
base_port=""
connection="local-cluster"
executor="warm"
pacing=()
superlink_state=()
data_arg=""
proxy=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --nodes) nodes="$2"; shift 2 ;;
        --insecure) insecure=1; shift ;;
        --dir) dir="$2"; shift 2 ;;
        --port) port="$2"; shift 2 ;;
        --base-port) base_port="$2"; shift 2 ;;
        --connection) connection="$2"; shift 2 ;;
        --executor) executor="$2"; shift 2 ;;
        --poll-min|--poll-max) pacing+=("$1" "$2"); shift 2 ;;
        --superlink-in-memory) superlink_state=(--in-memory); shift ;;
        --data) data_arg="$2"; shift 2 ;;
        --proxy) proxy=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage_error "unknown argument '$1' (see --help)" ;;
    esac
done
[[ "$nodes" =~ ^[1-9][0-9]*$ ]] || usage_error "--nodes '$nodes' is not allowed; allowed: a whole number >= 1"
[[ -z "$port" ]] || require_port "$port" --port
[[ -z "$base_port" ]] || require_port "$base_port" --base-port
[[ $proxy -eq 0 || $insecure -eq 0 ]] || usage_error "--proxy needs TLS (it checks client certificates); drop --insecure"
[[ $proxy -eq 0 ]] || command -v nginx >/dev/null || die "--proxy needs nginx, which is not installed (Debian: apt-get install nginx)"

# node_data[i]: node i's data path from --data (absolute), checked before any work; empty without --data.
node_data=()
if [[ -n "$data_arg" ]]; then
    data_allowed="allowed: a folder holding node-0 .. node-$((nodes - 1)), or $nodes comma-separated paths that exist"
    if [[ "$data_arg" == *,* ]]; then
        IFS=',' read -r -a node_data <<<"$data_arg"
        [[ ${#node_data[@]} -eq $nodes ]] || usage_error "--data lists ${#node_data[@]} paths for $nodes nodes; $data_allowed"
    else
        for ((i = 0; i < nodes; i++)); do node_data+=("${data_arg%/}/node-$i"); done
    fi
    for i in "${!node_data[@]}"; do
        [[ -e "${node_data[$i]}" ]] || usage_error "--data: node-$i's data '${node_data[$i]}' does not exist; $data_allowed"
        node_data[i]="$(realpath "${node_data[$i]}")"
    done
fi
use_flower
mkdir -p "$dir"
dir="$(realpath "$dir")"
run="$dir/run"

# The PID in pid file $1 if that process is still the Flower process it was.
live_pid() {
    local pid
    [[ -f "$1" ]] || return 1
    pid="$(cat "$1")"
    [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -Eq '(flower|start)-super(link|node)|deploy[.]supernode' && echo "$pid"
}

# $1 and all its descendants.
process_tree() {
    local child
    echo "$1"
    for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        process_tree "$child"
    done
}

free_ports() {
    python - "$1" <<'PY'
import socket, sys
sockets = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in sockets))
PY
}

# Start "$@" in its own session, logging to $run/$name.log, its PID in $run/$name.pid.
launch() {
    local name="$1"
    shift
    setsid "$@" >"$run/$name.log" 2>&1 </dev/null &
    local pid=$! deadline=$((SECONDS + START_TIMEOUT))
    echo "$pid" >"$run/$name.pid"
    # Until it execs, the child is a copy of this script: wait for that, so that the
    # liveness checks that follow see the real command (on a busy machine this takes a while).
    until live_pid "$run/$name.pid" >/dev/null || [[ ! -d "/proc/$pid" ]] || [[ $SECONDS -ge $deadline ]]; do
        sleep 0.1
    done
}

# Stop the processes recorded in the given PID files, with all their descendants:
# SIGTERM, then SIGKILL for what is left after STOP_TIMEOUT. Prints how many it stopped.
stop_group() {
    local pid_file pid pids=() alive=() deadline
    for pid_file in "$@"; do
        if pid="$(live_pid "$pid_file")"; then
            mapfile -t -O "${#pids[@]}" pids < <(process_tree "$pid")
        fi
        rm -f "$pid_file"
    done
    [[ ${#pids[@]} -gt 0 ]] || { echo 0; return 0; }
    kill -TERM "${pids[@]}" 2>/dev/null || true
    deadline=$((SECONDS + STOP_TIMEOUT))
    while [[ $SECONDS -lt $deadline ]]; do
        alive=()
        for pid in "${pids[@]}"; do
            if kill -0 "$pid" 2>/dev/null && [[ "$(ps -o stat= -p "$pid")" != Z* ]]; then alive+=("$pid"); fi
        done
        [[ ${#alive[@]} -gt 0 ]] || break
        sleep 0.5
    done
    if [[ ${#alive[@]} -gt 0 ]]; then
        kill -KILL "${alive[@]}" 2>/dev/null || true
        echo "killed ${#alive[@]} process(es) that ignored SIGTERM: ${alive[*]}" >&2
    fi
    echo "${#pids[@]}"
}

# SuperNodes first, so each signs off at the SuperLink while it still runs (a node the
# SuperLink still counts as online cannot connect again until its heartbeat expires).
stop_all() {
    local nodes_stopped superlink_stopped
    nodes_stopped="$(stop_group "$run"/node-*.pid)"
    superlink_stopped="$(stop_group "$run"/superlink.pid)"
    if [[ $((nodes_stopped + superlink_stopped)) -eq 0 ]]; then
        echo "no cluster processes run in $dir"
    else
        echo "stopped $((nodes_stopped + superlink_stopped)) process(es) of the cluster in $dir"
    fi
}

# True when the SuperLink answers at 127.0.0.1:$1 (its own port, or the proxy's).
health_url() {
    local scheme=https curl_ca=(--cacert "$dir/certs/ca.crt")
    [[ $insecure -eq 0 ]] || { scheme=http; curl_ca=(); }
    curl -fsS "${curl_ca[@]}" "$scheme://127.0.0.1:$1/health" >/dev/null 2>&1
}

fail_up() {
    echo "error: $1" >&2
    if [[ -n "${2:-}" ]]; then
        echo "--- last lines of $2:" >&2
        tail -n 15 "$2" >&2
        if grep -q "code: 2004" "$2"; then
            echo "hint: the SuperLink refused the node's key. A node that was killed rather than stopped stays" \
                "online for the SuperLink until its heartbeat lapses (up to a minute): wait, then run up again." >&2
        fi
    fi
    stop_all >&2
    exit 1
}

cluster_up() {
    if live_pid "$run/superlink.pid" >/dev/null; then
        die "a cluster already runs from $dir; stop it first: deploy/local-cluster.sh down --dir $dir"
    fi
    mkdir -p "$run"
    rm -f "$run"/*.pid
    local ports needed=2 i
    [[ -n "$base_port" ]] || needed=$((nodes + 2))
    read -r -a ports <<<"$(free_ports "$needed")"
    port="${port:-${ports[0]}}"
    # Where the nodes reach the SuperLink: its own port, or the proxy's (the last free port).
    local fleet_port="$port" public=()
    [[ $proxy -eq 0 ]] || { fleet_port="${ports[$((needed - 1))]}"; public=(--public-address "127.0.0.1:$fleet_port"); }

    local security=(--insecure) node_security=(--insecure) connection_security=(--insecure)
    if [[ $insecure -eq 0 ]]; then
        [[ -f "$dir/certs/superlink.crt" ]] || "$DEPLOY_DIR/make-certs.sh" --out "$dir/certs" --hosts localhost,127.0.0.1,::1
        "$DEPLOY_DIR/make-node-keys.sh" --out "$dir/keys" $(seq -f "node-%g" 0 $((nodes - 1))) >/dev/null
        security=(--certs "$dir/certs")
        connection_security=(--ca "$dir/certs/ca.crt")
    fi
    local data="$dir/data/$nodes-nodes"
    if [[ ${#node_data[@]} -eq 0 && ! -d "$data/node-$((nodes - 1))" ]]; then
        (cd "$REPO_DIR" && python -m deploy node-data --nodes "$nodes" --out "$data") || die "could not write the nodes' data to $data"
    fi

    launch superlink "$DEPLOY_DIR/start-superlink.sh" --state "$dir/superlink" --port "$port" "${superlink_state[@]}" \
        "${security[@]}" "${public[@]}"
    local deadline=$((SECONDS + START_TIMEOUT))
    until health_url "$port" && health_url "$fleet_port"; do
        live_pid "$run/superlink.pid" >/dev/null || fail_up "the SuperLink exited" "$run/superlink.log"
        [[ $SECONDS -lt $deadline ]] || fail_up "the SuperLink did not answer within ${START_TIMEOUT}s" "$run/superlink.log"
        sleep 0.5
    done
    echo "SuperLink PID $(cat "$run/superlink.pid") on 127.0.0.1:$port ($([[ $insecure -eq 1 ]] && echo insecure || echo "TLS, SuperNode authentication"))"
    [[ $proxy -eq 0 ]] || echo "nginx on 127.0.0.1:$fleet_port: the nodes' Fleet API; its Control API needs $dir/certs/operator.crt"
    "$DEPLOY_DIR/add-connection.sh" --name "$connection" --address "127.0.0.1:$port" "${connection_security[@]}"
    if [[ $insecure -eq 0 ]]; then
        "$DEPLOY_DIR/register-nodes.sh" --connection "$connection" $(seq -f "$dir/keys/node-%g.pub" 0 $((nodes - 1))) \
            || fail_up "registering the nodes' keys failed" "$run/superlink.log"
    fi

    # The nodes share this machine's cores, as simulated clients share them under Ray.
    local threads=$(($(nproc) / nodes))
    [[ $threads -ge 1 ]] || threads=1
    for ((i = 0; i < nodes; i++)); do
        local node_port="${ports[$((i + 1))]:-}"
        [[ -z "$base_port" ]] || node_port=$((base_port + i))
        [[ $insecure -eq 1 ]] || node_security=(--ca "$dir/certs/ca.crt" --key "$dir/keys/node-$i")
        launch "node-$i" env OMP_NUM_THREADS="$threads" "$DEPLOY_DIR/start-supernode.sh" --superlink "127.0.0.1:$fleet_port" --port "$node_port" \
            --data-path "${node_data[$i]:-$data/node-$i}" --name "node-$i" --executor "$executor" "${pacing[@]}" "${node_security[@]}"
    done
    deadline=$((SECONDS + ONLINE_TIMEOUT))
    for ((i = 0; i < nodes; i++)); do
        # A SuperNode logs its id once the SuperLink has accepted it.
        until grep -q "SuperNode ID:" "$run/node-$i.log"; do
            live_pid "$run/node-$i.pid" >/dev/null || fail_up "SuperNode node-$i exited" "$run/node-$i.log"
            [[ $SECONDS -lt $deadline ]] || fail_up "SuperNode node-$i did not connect within ${ONLINE_TIMEOUT}s" "$run/node-$i.log"
            sleep 0.5
        done
    done
    printf 'PORT=%s\nFLEET_PORT=%s\nNODES=%s\nCONNECTION=%s\nINSECURE=%s\n' \
        "$port" "$fleet_port" "$nodes" "$connection" "$insecure" >"$run/cluster.env"
    echo "$nodes SuperNodes online, each on its own data in ${data_arg:-$data}"
    echo "submit:  flwr run $REPO_DIR $connection --stream -c 'output-dir=\"$dir/outputs\"'"
    echo "stop:    $0 down --dir $dir"
}

cluster_status() {
    local pid_file name pid found=0
    for pid_file in "$run"/superlink.pid "$run"/node-*.pid; do
        [[ -f "$pid_file" ]] || continue
        found=1
        name="$(basename "$pid_file" .pid)"
        if pid="$(live_pid "$pid_file")"; then echo "$name: PID $pid running"; else echo "$name: not running"; fi
    done
    [[ $found -eq 1 ]] || { echo "no cluster runs from $dir"; return 0; }
    if live_pid "$run/superlink.pid" >/dev/null && [[ -f "$run/cluster.env" ]]; then
        flwr supernode list "$(sed -n 's/^CONNECTION=//p' "$run/cluster.env")"
    fi
}

case "$command" in
    up) cluster_up ;;
    down) stop_all ;;
    status) cluster_status ;;
esac
