"""`python -m deploy bench`: seconds per round in deployment next to simulation, same workload.

Flower 1.41's deployment runtime starts a fresh `flwr-clientapp` process for every
message (interpreter, Flower and torch imports, model and data set-up) and moves
messages by polling, where the simulation engine keeps its Ray actors warm. This
command runs the same app, run config, seed and data split for the same rounds on
`--nodes` nodes, first on the local simulation SuperLink, then on a local deployment
cluster (`deploy/local-cluster.sh`: TLS and SuperNode authentication, each node
training on its own data folder) once per `--executors` entry (`warm`: each message's
process forked from a warm one, `deploy/warm_executor.py`; `flower`: Flower's own SuperExec,
a fresh process per message), and prints the seconds of every round side by side with
the overhead of deployment. Round 1 carries one-off costs on both sides (Ray
start-up in simulation, the first parse of each node's data in deployment), so the
summary also gives the mean of the later rounds. `--superlink-state memory` starts the
cluster's SuperLink with its state in memory (`start-superlink.sh --in-memory`)
instead of its SQLite file. Everything it prints, with the
machine's load average before and after and the app's commit, also goes to
`bench-deploy.json` in the output folder (`--out`).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.connections import execute_on
from deploy.local_cluster import SUPERLINK_STATES, LocalCluster
from deploy.node_data import write_node_data
from sim.bench import app_commit, weights_digest
from sim.console import echo
from sim.run import RunOutcome, RunRequest, ensure_superlink, execute

CONNECTION = "bench-deploy"
EXECUTORS = ("warm", "flower")


@dataclass(frozen=True)
class BenchSetup:
    """What to compare: nodes and rounds, the deployment executors, and where the SuperLink keeps its state."""

    nodes: int
    rounds: int
    executors: list[str]
    superlink_state: str = "file"


def bench_command(app_dir: Path, override_texts: list[str], setup: BenchSetup, out: Path | None) -> int:
    """Run the workload in simulation, then in deployment with each executor, and print the comparison.

    Returns the exit code: 0 when every run completed.
    """
    nodes, rounds, executors = setup.nodes, setup.rounds, setup.executors
    unknown = [executor for executor in executors if executor not in EXECUTORS]
    if unknown or not executors:
        raise ValueError(
            f"--executors {','.join(executors)!r} is not allowed; "
            f"allowed: a comma-separated subset of {', '.join(EXECUTORS)}"
        )
    if setup.superlink_state not in SUPERLINK_STATES:
        raise ValueError(
            f"--superlink-state {setup.superlink_state!r} is not allowed; allowed: {', '.join(SUPERLINK_STATES)}"
        )
    folder = (out or Path(tempfile.mkdtemp(prefix="fedapp-bench-deploy-"))).absolute()
    load_before = os.getloadavg()
    runtimes = ["simulation", *(f"deployment-{executor}" for executor in executors)]
    requests = {
        runtime: RunRequest.build(
            app_dir,
            override_texts,
            nodes=nodes,
            extra={"num-server-rounds": rounds, "output-dir": str(folder / "outputs"), "run-name": runtime},
        )
        for runtime in runtimes
    }
    ensure_superlink(requests["simulation"])
    outcomes = {"simulation": execute(requests["simulation"], "simulation")}
    cluster = LocalCluster(folder / "cluster", CONNECTION)
    write_node_data(app_dir, cluster.data_folder(nodes), nodes, "parquet", override_texts)
    for executor in executors:
        runtime = f"deployment-{executor}"
        echo(
            f"starting a local deployment cluster ({executor} executor, SuperLink state in "
            f"{setup.superlink_state}) in {cluster.folder}"
        )
        cluster.up(nodes, executor=executor, superlink_in_memory=setup.superlink_state == "memory")
        try:
            outcomes[runtime] = execute_on(requests[runtime], CONNECTION, runtime)
        finally:
            echo(cluster.down().strip())
    failed = [outcome for outcome in outcomes.values() if not outcome.succeeded]
    for outcome in failed:
        echo(f"run {outcome.run_id} ended with status {outcome.status}; no comparison")
    if failed:
        return 1
    table = comparison(outcomes, requests["simulation"])
    print(table)
    report = bench_report(outcomes, requests["simulation"], app_dir, load_before)
    report["superlink_state"] = setup.superlink_state
    report["table"] = table.splitlines()
    (folder / "bench-deploy.json").write_text(json.dumps(report, indent=1))
    echo(f"wrote {folder / 'bench-deploy.json'}")
    return 0


def bench_report(
    outcomes: dict[str, RunOutcome], request: RunRequest, app_dir: Path, load_before: tuple[float, float, float]
) -> dict[str, Any]:
    """Every figure of the comparison as plain data: per runtime its round seconds and means, and the overheads."""
    seconds = {runtime: round_seconds(outcome) for runtime, outcome in outcomes.items()}
    later = {runtime: statistics.mean(values[1:] or values) for runtime, values in seconds.items()}
    return {
        "command": "python -m deploy bench",
        "app": {"folder": str(app_dir), "commit": app_commit(app_dir)},
        "workload": {"nodes": request.num_nodes, **request.config.to_mapping()},
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
        "runtimes": {
            runtime: {
                "round_seconds": seconds[runtime],
                "mean_rounds_2_plus": later[runtime],
                "overhead_rounds_2_plus": later[runtime] - later["simulation"],
                "whole_run_seconds": outcome.seconds,
                "run_id": outcome.run_id,
                "final_weights": weights_digest(outcome.folder / "final_model.pt"),
            }
            for runtime, outcome in outcomes.items()
        },
    }


def round_seconds(outcome: RunOutcome) -> list[float]:
    """Seconds of rounds 1, 2, ... of a finished run (round 0 is the initial evaluation)."""
    return [float(record["seconds"]) for record in outcome.metrics()["rounds"][1:]]


def comparison(outcomes: dict[str, RunOutcome], request: RunRequest) -> str:
    """The side-by-side table of seconds per round and the summary lines, deployments against simulation."""
    config = request.config
    seconds = {runtime: round_seconds(outcome) for runtime, outcome in outcomes.items()}
    deployments = [runtime for runtime in seconds if runtime != "simulation"]
    width = max(len(runtime) for runtime in seconds) + 2
    lines = [
        f"[bench] workload: model={config.model} nodes={request.num_nodes} rounds={config.num_server_rounds} "
        f"local-epochs={config.local_epochs} batch-size={config.batch_size} "
        f"fraction-evaluate={config.fraction_evaluate}",
        "[bench] seconds per round (overhead = deployment - simulation):",
        "round"
        + "".join(f"{runtime:>{width}}" for runtime in seconds)
        + "".join(f"{'overhead ' + r[11:]:>{width}}" for r in deployments),
    ]
    for index in range(config.num_server_rounds):
        simulated = seconds["simulation"][index]
        cells = "".join(f"{values[index]:>{width - 1}.1f}s" for values in seconds.values())
        overheads = "".join(f"{seconds[r][index] - simulated:>+{width - 1}.1f}s" for r in deployments)
        lines.append(f"{index + 1:>5}{cells}{overheads}")
    for title, first in (("all rounds", 0), ("rounds 2+", 1)):
        if config.num_server_rounds <= first:
            continue
        means = {runtime: statistics.mean(values[first:]) for runtime, values in seconds.items()}
        summary = ", ".join(
            f"{runtime} {means[runtime]:.1f}s (overhead {means[runtime] - means['simulation']:+.1f}s, "
            f"{means[runtime] / means['simulation']:.1f}x)"
            for runtime in deployments
        )
        lines.append(f"[bench] mean per round, {title}: simulation {means['simulation']:.1f}s; {summary}")
    totals = ", ".join(f"{runtime} {outcome.seconds:.1f}s" for runtime, outcome in outcomes.items())
    lines.append(f"[bench] whole runs incl. start-up: {totals}")
    return "\n".join(lines)
