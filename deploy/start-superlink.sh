#!/usr/bin/env bash
# Start a Flower SuperLink for fedapp in the foreground (systemd, or a terminal).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
    cat <<'USAGE'
Usage: deploy/start-superlink.sh --state DIR [--certs DIR] [--port PORT] [--public-address HOST:PORT]
                                  [--host HOST] [--in-memory] [--insecure]

Run a SuperLink in the foreground with what an edge federation needs:
  - TLS with DIR/superlink.crt and DIR/superlink.key of --certs (from make-certs.sh);
  - SuperNode authentication: only SuperNodes whose public key was registered
    (deploy/register-nodes.sh) may connect;
  - persistent state in <state>/state.db: registered nodes and run history survive
    a restart (flwr log/list keep working);
  - runtime dependency installation off: runs use this environment's packages and
    nothing is downloaded when a run starts.

Who can submit runs: Flower serves the Fleet API (SuperNodes), the Control API (the flwr
CLI: submit, stop, list, register nodes) and the Runtime API (this host's ServerApps) on
one port, and whoever reaches Control can run code on this host. So the SuperLink
listens on 127.0.0.1 only: runs are submitted on this host, or through an SSH tunnel
(ssh -L PORT:127.0.0.1:PORT this-host). --public-address puts nginx in front on
HOST:PORT, with the SuperLink's certificate: it forwards /v1/fleet/ to every client
(SuperNodes still prove their registered key) and /v1/control/ only to a client
certificate signed by the CA (operator.crt from make-certs.sh); everything else is refused.

--state     the SuperLink's folder (created): state.db, proxy/ (nginx's config and
            log with --public-address), and the working directory of every
            ServerApp it runs (give runs an absolute output-dir)
--certs     folder holding ca.crt, superlink.crt and superlink.key (default: ./certs)
--port      port of the Fleet, Control and Runtime APIs, all on one HTTPS port on
            127.0.0.1 (default: 8000)
--public-address
            HOST:PORT where SuperNodes reach this host (e.g. 0.0.0.0:8443): nginx
            (Debian package nginx) listens there and stops with the SuperLink
--host      address the SuperLink itself listens on (default: 127.0.0.1); anything
            but loopback lets every client that trusts ca.crt submit runs (a warning
            says so) and is refused with --public-address
--in-memory keep the SuperLink's state in memory instead of <state>/state.db: every
            request of the nodes then skips its SQLite queries (at 10 nodes on one
            2-core machine a round took 2.5 s instead of 4.1 s, docs/performance-cohorts.md),
            but a restart forgets the registered nodes (register them again) and the runs
--insecure  plain HTTP and no SuperNode authentication: only for trying things on one machine

Example:
  deploy/start-superlink.sh --state /var/lib/fedapp/superlink --certs /etc/fedapp/certs --public-address 0.0.0.0:8443
USAGE
}

state=""
certs="certs"
host="127.0.0.1"
port=8000
in_memory=0
insecure=0
public=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --state) state="$2"; shift 2 ;;
        --certs) certs="$2"; shift 2 ;;
        --host) host="$2"; shift 2 ;;
        --port) port="$2"; shift 2 ;;
        --public-address) public="$2"; shift 2 ;;
        --in-memory) in_memory=1; shift ;;
        --insecure) insecure=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage_error "unknown argument '$1' (see --help)" ;;
    esac
done
[[ -n "$state" ]] || usage_error "--state DIR is required (see --help)"
require_port "$port" --port
loopback=0
[[ "$host" == 127.0.0.1 || "$host" == localhost || "$host" == ::1 ]] && loopback=1
if [[ -n "$public" ]]; then
    [[ "$public" =~ ^(.+):([0-9]+)$ ]] || usage_error "--public-address '$public' is not allowed; allowed: HOST:PORT"
    public_host="${BASH_REMATCH[1]}" public_port="${BASH_REMATCH[2]}"
    require_port "$public_port" --public-address
    [[ $insecure -eq 0 ]] || usage_error "--public-address needs TLS (the proxy checks client certificates); drop --insecure"
    [[ $loopback -eq 1 ]] || usage_error "--host '$host' is not allowed with --public-address; allowed: 127.0.0.1 (the proxy is the public side)"
    [[ "$public_host:$public_port" != "$host:$port" ]] || usage_error "--public-address '$public' is the SuperLink's own --host:--port; pick another port"
    command -v nginx >/dev/null || die "--public-address needs nginx, which is not installed (Debian: apt-get install nginx)"
fi
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

# Write nginx's configuration for the proxy in front of the SuperLink to $state/proxy/nginx.conf.
write_proxy_config() {
    local proxy="$state/proxy" user=""
    mkdir -p "$proxy/tmp"
    # As root, nginx would hand requests to workers running as 'nobody'; they run as the SuperLink does.
    [[ $EUID -ne 0 ]] || user="user root;"
    cat >"$proxy/nginx.conf" <<NGINX
# Written by deploy/start-superlink.sh --public-address: SuperNodes reach the Fleet API here;
# the Control API answers only clients with a certificate signed by the federation's CA.
$user
daemon off;
worker_processes 1;
pid $proxy/nginx.pid;
error_log $proxy/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $proxy/tmp/body;
    proxy_temp_path $proxy/tmp/proxy;
    fastcgi_temp_path $proxy/tmp/fastcgi;
    uwsgi_temp_path $proxy/tmp/uwsgi;
    scgi_temp_path $proxy/tmp/scgi;
    client_max_body_size 0;           # model updates travel as request bodies
    proxy_request_buffering off;
    proxy_buffering off;              # log streams (flwr log, run --stream) pass through as they come
    proxy_read_timeout 1h;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header X-Forwarded-For \$remote_addr;
    proxy_ssl_trusted_certificate $certs/ca.crt;
    proxy_ssl_verify on;
    proxy_ssl_name localhost;         # make-certs.sh always names localhost (nginx matches DNS names only)
    upstream superlink { server 127.0.0.1:$port; keepalive 16; }
    server {
        listen $public_host:$public_port ssl;
        ssl_certificate $certs/superlink.crt;
        ssl_certificate_key $certs/superlink.key;
        ssl_client_certificate $certs/ca.crt;
        ssl_verify_client optional;
        ssl_protocols TLSv1.2 TLSv1.3;
        location /v1/fleet/ { proxy_pass https://superlink; }
        location = /health { proxy_pass https://superlink; }
        location /v1/control/ {
            if (\$ssl_client_verify != SUCCESS) { return 403; }
            proxy_pass https://superlink;
        }
        location / { return 404; }
    }
}
NGINX
    echo "$proxy/nginx.conf"
}

# Start nginx with config $1 as this process's child, and a watcher that stops it when
# this process (the SuperLink, once exec'd) ends; die if it does not come up within 10 s.
# Neither keeps this script's stdout or stderr open.
start_proxy() {
    local config="$1" proxy deadline=$((SECONDS + 10))
    proxy="$(dirname "$config")"
    : >"$proxy/error.log"  # this start's errors only: the first names the cause
    nginx -t -q -e "$proxy/error.log" -c "$config" || die "nginx refused $config: $(head -n 1 "$proxy/error.log")"
    nginx -e "$proxy/error.log" -c "$config" >>"$proxy/error.log" 2>&1 &
    local nginx_pid=$! superlink_pid=$$
    # Until this PID is gone or a zombie (which its parent may reap only after our output closes).
    ( while [[ "$(ps -o stat= -p "$superlink_pid")" == [^Z]* ]]; do sleep 1; done; kill -TERM "$nginx_pid" ) >/dev/null 2>&1 &
    local probe_host="$public_host"
    case "$public_host" in 0.0.0.0|'*') probe_host=127.0.0.1 ;; '[::]') probe_host='[::1]' ;; esac
    until kill -0 "$nginx_pid" 2>/dev/null && curl -sk --max-time 1 -o /dev/null "https://$probe_host:$public_port/"; do
        kill -0 "$nginx_pid" 2>/dev/null || die "nginx could not listen on $public: $(head -n 1 "$proxy/error.log")"
        [[ $SECONDS -lt $deadline ]] || die "nginx did not answer on $public within 10 s ($proxy/error.log)"
        sleep 0.2
    done
}

if [[ -n "$public" ]]; then
    start_proxy "$(write_proxy_config)"
    echo "who can submit runs: clients on this host (127.0.0.1:$port, or ssh -L $port:127.0.0.1:$port) and" \
        "holders of a client certificate signed by $certs/ca.crt at $public/v1/control/;" \
        "SuperNodes connect to $public (Fleet API only; nginx, config $state/proxy/nginx.conf)"
elif [[ $loopback -eq 1 ]]; then
    echo "who can submit runs: clients on this host only (127.0.0.1:$port, or ssh -L $port:127.0.0.1:$port);" \
        "SuperNodes on other hosts need --public-address"
else
    echo "warning: --host $host exposes the Control API: anyone who reaches $host:$port and trusts the CA" \
        "can submit a run, i.e. run code on this host; use --public-address instead" >&2
fi

cd "$state"
exec flower-superlink "${arguments[@]}"
