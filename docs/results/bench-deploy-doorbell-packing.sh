#!/usr/bin/env bash
# Session 4 deployment before/after on a quiet machine, one job at a time: "before" = /tmp/edge-before
# (a clone of main at 1fc3147), "after" = /tmp/edge-after (a clone of branch edge: doorbell, packed
# records, --superlink-state). Each side has its own FLWR_HOME; one port. The after side also runs with
# the SuperLink's state in memory at 10 nodes. Usage: REPS='1 2 3' bench-deploy-doorbell-packing.sh deploy overhead
set -uo pipefail
R=${R:-/tmp/edge-bench}
export FLWR_LOCAL_SUPERLINK_HTTP_API_PORT=39123
side_dir() { echo "/tmp/edge-$1"; }
stop_all() {
    for side in before after; do
        dir=$(side_dir $side)
        (cd "$dir" && FLWR_HOME=/tmp/flwr-edge-$side PATH=$dir/.venv/bin:$PATH .venv/bin/python -m sim stop >/dev/null 2>&1)
    done
}
stamp() { echo "=== $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg) $*"; }
deploy_side() {  # side nodes tag [extra bench arguments]
    stop_all
    local side=$1 nodes=$2 tag=$3
    shift 3
    dir=$(side_dir $side)
    out=$R/deploy-$side-$nodes-$tag
    rm -rf "$out"
    stamp "deploy bench $side $nodes nodes ($tag) $*"
    (cd "$dir" && FLWR_HOME=/tmp/flwr-edge-$side PATH=$dir/.venv/bin:$PATH timeout 900 .venv/bin/python -m deploy bench --nodes "$nodes" --rounds 5 -c model=2nn --out "$out" "$@" | grep '^\[bench\]')
    stamp "exit $?"
}
phase_deploy() {
    for i in ${REPS:-1}; do
        deploy_side before 2 r$i; deploy_side after 2 r$i
        deploy_side before 10 r$i; deploy_side after 10 r$i; deploy_side after 10 memory-r$i --superlink-state memory
    done
    stop_all
}
phase_overhead() {  # the simulation's own cost per round when clients do not train, at 10 and 100 clients
    stop_all
    dir=$(side_dir after)
    stamp "sim bench after overhead"
    (cd "$dir" && FLWR_HOME=/tmp/flwr-edge-after PATH=$dir/.venv/bin:$PATH .venv/bin/python -m sim bench --sections overhead --rounds 6 --out "$R/bench-overhead-after.json" | grep '^\[bench\]')
    stamp "exit $?"
    stop_all
}
for phase in "$@"; do "phase_$phase"; done
