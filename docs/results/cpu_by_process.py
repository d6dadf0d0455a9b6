"""CPU used by each kind of Flower process while a benchmark runs (diagnosis for docs/performance-cohorts.md).

    python docs/results/cpu_by_process.py SECONDS OUT.json &   # then start the benchmark
    python docs/results/cpu_by_process.py --report OUT.json     # cores used per kind, in 5 s steps

Every 0.2 s it reads the CPU time of every process whose command line names a Flower
component (SuperLink, SuperNode launcher, warm executor and its forked tasks,
ServerApp, ...) and keeps the last value of each, so processes that end still count.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter

import psutil

KINDS = (
    "flower-superlink",
    "deploy.supernode",
    "warm_executor",
    "flwr-serverapp",
    "flwr-clientapp",
    "flower-superexec",
    "flwr-simulation",
    "ray::",
    "raylet",
)


def _kind(process: psutil.Process) -> str | None:
    try:
        command = " ".join(process.cmdline())
    except psutil.Error:
        return None
    return next((kind for kind in KINDS if kind in command), None)


def sample(seconds: float, out: str) -> None:
    """Record cumulative CPU seconds per kind every 0.2 s for `seconds`, as [time, {kind: seconds}] rows."""
    last: dict[int, tuple[str, float]] = {}
    rows = []
    started = time.time()
    while time.time() - started < seconds:
        for process in psutil.process_iter():
            kind = last[process.pid][0] if process.pid in last else _kind(process)
            if kind is None:
                continue
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            last[process.pid] = (kind, times.user + times.system)
        totals: Counter[str] = Counter()
        for kind, used in last.values():
            totals[kind] += used
        rows.append([time.time(), dict(totals)])
        time.sleep(0.2)
    with open(out, "w") as file:
        json.dump(rows, file)


def report(path: str, step: float = 5.0) -> None:
    """Print the cores each kind used in every `step` seconds of the recording."""
    with open(path) as file:
        rows = json.load(file)
    previous = rows[0]
    for row in rows[1:]:
        if row[0] - previous[0] < step:
            continue
        span = row[0] - previous[0]
        cores = {kind: (used - previous[1].get(kind, 0.0)) / span for kind, used in row[1].items()}
        busy = sorted(((value, kind) for kind, value in cores.items() if value > 0.01), reverse=True)
        print(
            f"{row[0] - rows[0][0]:6.0f}s  {sum(cores.values()):.2f} cores  "
            + ", ".join(f"{k} {v:.2f}" for v, k in busy)
        )
        previous = row


if __name__ == "__main__":
    if sys.argv[1] == "--report":
        report(sys.argv[2])
    else:
        sample(float(sys.argv[1]), sys.argv[2])
