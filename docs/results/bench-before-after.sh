#!/usr/bin/env bash
# Session 3 before/after on a quiet machine: "before" = /tmp/fedapp-base2 (main fdd1fcb with the perf branch's
# harness files sim/bench.py, sim/bench_plot.py, sim/plain_loop.py, deploy/bench.py copied in);
# "after" = /tmp/perf-after (a clone of branch perf). Each side has its own FLWR_HOME; one port.
set -uo pipefail
R=/tmp/perf-bench/run3
export FLWR_LOCAL_SUPERLINK_HTTP_API_PORT=39117
side_env() {  # side -> dir home
    if [[ $1 == before ]]; then echo "/tmp/fedapp-base2 /tmp/flwr-perf-base2"; else echo "/tmp/perf-after /tmp/flwr-perf-after"; fi
}
stop_all() {
    for side in before after; do
        read -r dir home < <(side_env $side)
        (cd "$dir" && FLWR_HOME=$home PATH=$dir/.venv/bin:$PATH .venv/bin/python -m sim stop >/dev/null 2>&1)
    done
}
stamp() { echo "=== $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg) $*"; }
bench_side() {  # side section rounds tag [timeout]
    stop_all
    read -r dir home < <(side_env $1)
    stamp "sim bench $1 $2 --rounds $3 ($4)"
    local cap=()
    [[ ${5:-0} != 0 ]] && cap=(timeout "$5")
    (cd "$dir" && FLWR_HOME=$home PATH=$dir/.venv/bin:$PATH "${cap[@]}" .venv/bin/python -c 'import sys; from pathlib import Path; import sim.bench as b; sys.exit(b.bench_command(Path.cwd(), False, Path(sys.argv[1]), (sys.argv[2],), int(sys.argv[3])))' "$R/bench-$2-$1-$4.json" "$2" "$3")
    stamp "exit $?"
}
deploy_side() {  # side nodes tag
    stop_all
    read -r dir home < <(side_env $1)
    out=$R/deploy-$1-$2-$3
    rm -rf "$out"
    stamp "deploy bench $1 $2 nodes ($3)"
    (cd "$dir" && FLWR_HOME=$home PATH=$dir/.venv/bin:$PATH timeout 900 .venv/bin/python -m deploy bench --nodes "$2" --rounds 5 -c model=2nn --out "$out")
    stamp "exit $?"
}
phase_cohorts() { for i in ${REPS:-1}; do bench_side after cohorts 4 r$i; bench_side before cohorts 4 r$i; done; stop_all; }
phase_scale() { for i in ${REPS:-1}; do bench_side after scale 4 r$i; bench_side before scale 4 r$i 600; done; stop_all; }
phase_deploy() { for i in ${REPS:-1}; do for n in 2 10; do deploy_side before $n r$i; deploy_side after $n r$i; done; done; stop_all; }
phase_deploy2() { for i in ${REPS:-1}; do deploy_side before 2 r$i; deploy_side after 2 r$i; done; stop_all; }
phase_report() { bench_side after report 3 r1; stop_all; }
for phase in "$@"; do "phase_$phase"; done
