#!/usr/bin/env bash
# Session 2 before/after: "before" = /tmp/fedapp-base (main 7325d88 + this branch's harness files sim/bench.py,
# sim/bench_plot.py, sim/plain_loop.py, deploy/bench.py copied in, its own venv and FLWR_HOME);
# "after" = /tmp/perf-after (a clone of branch perf at d8d2b8c) with the branch's venv.
set -uo pipefail
R=/tmp/perf-bench/run2
export FLWR_LOCAL_SUPERLINK_HTTP_API_PORT=39118
AFTER_PY=/work/wt-perf/.venv/bin/python
BASE_PY=/tmp/fedapp-base/.venv/bin/python
stop_all() {
    (cd /tmp/perf-after && FLWR_HOME=/tmp/flwr-perf PATH=/work/wt-perf/.venv/bin:$PATH $AFTER_PY -m sim stop)
    (cd /tmp/fedapp-base && FLWR_HOME=/tmp/flwr-perf-base PATH=/tmp/fedapp-base/.venv/bin:$PATH $BASE_PY -m sim stop)
}
side_env() {  # side -> dir home py
    if [[ $1 == before ]]; then echo "/tmp/fedapp-base /tmp/flwr-perf-base /tmp/fedapp-base/.venv"; else echo "/tmp/perf-after /tmp/flwr-perf /work/wt-perf/.venv"; fi
}
phase_deploy() {
    for nodes in 2 10; do
        for side in before after; do
            stop_all
            read -r dir home venv < <(side_env $side)
            out=$R/deploy-$side-$nodes
            rm -rf "$out"
            echo "=== $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg) $side $nodes nodes: cd $dir && python -m deploy bench --nodes $nodes --rounds 5 -c model=2nn --out $out"
            (cd "$dir" && FLWR_HOME=$home PATH=$venv/bin:$PATH $venv/bin/python -m deploy bench --nodes "$nodes" --rounds 5 -c model=2nn --out "$out")
            echo "=== exit $? $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
        done
    done
    stop_all
}
phase_sim() {
    # Sized to the time left on a machine at load average 13-20: cohorts of 10 and 100 clients (not 50), the
    # 10,000-node comparison (not 1,000), 4 rounds a run. After first, then before; scale before is capped at
    # 10 minutes (main's code describes every one of the 10,000 nodes before round 1 through the engine's full scans).
    bench_side after cohorts 0
    bench_side before cohorts 0
    bench_side after scale 0
    bench_side before scale 600
    stop_all
}
bench_side() {  # side section timeout(0 = none)
    stop_all
    read -r dir home venv < <(side_env $1)
    echo "=== $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg) sim bench $1 $2 (--rounds 4)"
    local cap=()
    [[ $3 != 0 ]] && cap=(timeout "$3")
    (cd "$dir" && FLWR_HOME=$home PATH=$venv/bin:$PATH "${cap[@]}" $venv/bin/python -c 'import sys; from pathlib import Path; import sim.bench as b; b.COHORTS = {"cnn": (10, 100), "2nn": (10, 100)}; b.SCALE = b.SCALE[1:]; sys.exit(b.bench_command(Path.cwd(), False, Path(sys.argv[1]), (sys.argv[2],), 4))' "$R/bench-$2-$1.json" "$2")
    echo "=== exit $? $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
}
phase_report() {
    stop_all
    echo "=== $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg) report after"
    (cd /tmp/perf-after && FLWR_HOME=/tmp/flwr-perf PATH=/work/wt-perf/.venv/bin:$PATH $AFTER_PY -m sim bench --sections report,gpu --out "$R/bench-report-after.json")
    echo "=== exit $? $(date -u +%T)"
    stop_all
}
"phase_$1"
