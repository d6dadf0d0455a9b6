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
summary also gives the mean of the later rounds.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from deploy.connections import execute_on
from deploy.local_cluster import LocalCluster
from deploy.node_data import write_node_data
from sim.flwr_cli import echo
from sim.run import RunOutcome, RunRequest, ensure_superlink, execute

CONNECTION = "bench-deploy"
EXECUTORS = ("warm", "flower")


def bench_command(
    app_dir: Path, override_texts: list[str], nodes: int, rounds: int, executors: list[str], out: Path | None
) -> int:
    """Run the workload in simulation, then in deployment with each executor, and print the comparison.

    Returns the exit code: 0 when every run completed.
    """
    unknown = [executor for executor in executors if executor not in EXECUTORS]
    if unknown or not executors:
        raise ValueError(
            f"--executors {','.join(executors)!r} is not allowed; "
            f"allowed: a comma-separated subset of {', '.join(EXECUTORS)}"
        )
    folder = (out or Path(tempfile.mkdtemp(prefix="fedapp-bench-deploy-"))).absolute()
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
        echo(f"starting a local deployment cluster ({executor} executor) in {cluster.folder}")
        cluster.up(nodes, executor=executor)
        try:
            outcomes[runtime] = execute_on(requests[runtime], CONNECTION, runtime)
        finally:
            echo(cluster.down().strip())
    failed = [outcome for outcome in outcomes.values() if not outcome.succeeded]
    for outcome in failed:
        echo(f"run {outcome.run_id} ended with status {outcome.status}; no comparison")
    if failed:
        return 1
    print(comparison(outcomes, requests["simulation"]))
    return 0


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
