"""Issue 26: 100 clients a round, 2NN, B=10: logical clients on (auto) and off, beside the plain loop.

Run from the repository root, beside no other SuperLink user (its own Flower home and port):
`FLWR_HOME=$(mktemp -d) FLWR_LOCAL_SUPERLINK_HTTP_API_PORT=39093 PYTHONPATH=. \
    python docs/results/bench-logical-clients.py OUT.json [REPS] [ROUNDS]`.
Each repetition runs, back to back, the simulation with `clients-per-node` 1 and 0 (auto)
and the plain loop, so each ratio is measured side by side; steady state = rounds 2..N.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from sim.bench import _Bench, app_commit
from sim.superlink import LocalSuperLink

APP = Path(__file__).resolve().parents[2]
CLIENTS = 100


def main(out: Path, reps: int, rounds: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="fedapp-bench-logical-"))
    bench = _Bench(APP, folder, rounds)
    results = []
    for rep in range(reps):
        load = os.getloadavg()
        row: dict[str, object] = {"rep": rep + 1, "load_average_before": load}
        for setting in (1, 0):
            run = bench.simulate(
                f"2nn-{CLIENTS}-k{setting}-r{rep + 1}", CLIENTS, {"model": "2nn", "clients-per-node": setting}
            )
            row[f"simulation_k{setting}"] = run.steady_seconds
            row[f"digest_k{setting}"] = run.weights
        loop = bench.loop(f"2nn-{CLIENTS}-r{rep + 1}", CLIENTS, {"model": "2nn"})
        row["plain_loop"] = loop.steady_seconds
        row["ratio_k1"] = row["simulation_k1"] / loop.steady_seconds
        row["ratio_auto"] = row["simulation_k0"] / loop.steady_seconds
        row["load_average_after"] = os.getloadavg()
        print(json.dumps(row), flush=True)
        results.append(row)
    report = {
        "command": f"python docs/results/bench-logical-clients.py {out.name} {reps} {rounds}",
        "commit": app_commit(APP),
        "cpus": os.cpu_count(),
        "rounds": rounds,
        "at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "repetitions": results,
        "runs": [dataclasses.asdict(m) for m in bench.runs],
    }
    out.write_text(json.dumps(report, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    LocalSuperLink.default().stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 3, int(sys.argv[3]) if len(sys.argv) > 3 else 4)
