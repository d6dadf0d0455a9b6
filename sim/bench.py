"""`python -m sim bench`: simulation overhead against the compute floor, at 10, 100 and 1,000 nodes.

Every figure is measured side by side in one invocation, so the ratios hold on a
loaded machine even when the absolute seconds do not:

1. the default workload (10 nodes, CNN, E=1, B=10; 20 rounds, 3 with `--quick`) through
   `flwr run` on the simulation engine, and the same local work in one plain PyTorch
   process (`sim/plain_loop.py`): whole-run seconds and steady-state seconds per round
   (rounds 2..N; round 1 carries Ray's and the actors' start-up) and their ratios;
2. framework overhead per round with clients that do not train (`local-epochs=0`,
   no federated evaluation) at 10 and 100 nodes: the simulation's seconds per round
   minus the plain loop's (which then only evaluates centrally);
3. scale: 1,000 nodes at `fraction-train` 0.01 against 10 nodes at 1.0 (ten clients
   per round in both, no training), seconds per round and peak memory, as ratios;
4. peak memory of every run, summed over the SuperLink's whole process tree.

With a CUDA device, a GPU section trains the default workload with 1.0, 0.25 and
0.1 GPUs per client and reports clients per second and peak GPU memory; without
one it says so and skips it. The figures go to a JSON file, one line each to stdout.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sim.flwr_cli import FlwrCommandError, echo
from sim.process_memory import PeakSampler, tree_rss
from sim.run import RunRequest, ensure_superlink, execute

FULL_ROUNDS = 20
QUICK_ROUNDS = 3
DEFAULT_NODES = 10
SCALE_NODES = 1000
SCALE_FRACTION = 0.01
EMPTY_UPDATE = {"local-epochs": 0, "fraction-evaluate": 0.0}
GPU_SHARES = (1.0, 0.25, 0.1)
TARGETS = {"steady": 1.15, "whole": 2.0, "scale-time": 1.2, "scale-memory": 1.2, "gpu-clients": 2.0}
MEBIBYTE = 2**20


@dataclass(frozen=True)
class Measurement:
    """One run of a workload: whole-run seconds, seconds and central accuracy of rounds 0..N, peak memory in bytes."""

    label: str
    nodes: int
    whole_seconds: float
    round_seconds: list[float]
    central_accuracy: list[float]
    peak_memory_bytes: int

    @property
    def steady_seconds(self) -> float:
        """Mean seconds per round over rounds 2..N (round 1 when there is no other)."""
        return steady_state(self.round_seconds)


@dataclass(frozen=True)
class Figure:
    """One benchmark figure; `target` is the ratio the issue asks for (None: informative).

    The target is a maximum (overhead ratios) unless `at_least` (speed-ups).
    """

    name: str
    value: float
    unit: str
    detail: str
    target: float | None = None
    at_least: bool = False

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.value >= self.target if self.at_least else self.value <= self.target

    def line(self) -> str:
        """The figure as one printed line."""
        bound = ">=" if self.at_least else "<="
        verdict = (
            "" if self.target is None else f" (target {bound} {self.target:g}x: {'met' if self.met else 'MISSED'})"
        )
        return f"[bench] {self.name}: {self.detail} -> {self.value:.2f}{self.unit}{verdict}"


def steady_state(round_seconds: list[float]) -> float:
    """Mean of rounds 2..N of `round_seconds` (index 0 is round 0, the initial evaluation)."""
    rounds = round_seconds[1:]
    return statistics.mean(rounds[1:] if len(rounds) > 1 else rounds)


def ratio_figure(
    name: str, measured: float, floor: float, unit: str, labels: tuple[str, str], target: str | None
) -> Figure:
    """A figure comparing `measured` with `floor` as their ratio."""
    detail = f"{labels[0]} {measured:.2f}{unit}, {labels[1]} {floor:.2f}{unit}"
    return Figure(name, measured / floor, "x", detail, TARGETS[target] if target else None)


def bench_command(app_dir: Path, quick: bool, out: Path | None) -> int:
    """Run every workload, print one line per figure, write them all to `out`; return the exit code."""
    rounds = QUICK_ROUNDS if quick else FULL_ROUNDS
    out = (out or Path(f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json")).absolute()
    if out.exists():
        raise ValueError(f"--out {out} exists; allowed: a file that does not exist yet (results are never overwritten)")
    folder = Path(tempfile.mkdtemp(prefix="fedapp-bench-"))
    load_before = os.getloadavg()
    started = time.monotonic()
    bench = _Bench(app_dir, folder, rounds)
    default = bench.simulate("default", DEFAULT_NODES, {})
    default_loop = bench.loop("default", DEFAULT_NODES, {})
    empty = {nodes: bench.simulate(f"empty-{nodes}", nodes, EMPTY_UPDATE) for nodes in (DEFAULT_NODES, 100)}
    empty_loop = {nodes: bench.loop(f"empty-{nodes}", nodes, EMPTY_UPDATE) for nodes in (DEFAULT_NODES, 100)}
    scale = bench.simulate(f"empty-{SCALE_NODES}", SCALE_NODES, {**EMPTY_UPDATE, "fraction-train": SCALE_FRACTION})
    figures = [
        Figure(
            "same work: final central accuracy, simulation minus plain loop",
            default.central_accuracy[-1] - default_loop.central_accuracy[-1],
            "",
            f"simulation {default.central_accuracy[-1]:.4f}, plain loop {default_loop.central_accuracy[-1]:.4f}",
        ),
        ratio_figure(
            "whole run, default workload",
            default.whole_seconds,
            default_loop.whole_seconds,
            "s",
            ("simulation", "plain loop"),
            "whole",
        ),
        ratio_figure(
            "steady-state seconds per round",
            default.steady_seconds,
            default_loop.steady_seconds,
            "s",
            ("simulation", "plain loop"),
            "steady",
        ),
        *(
            Figure(
                f"framework overhead per round, {nodes} nodes, no training",
                empty[nodes].steady_seconds - empty_loop[nodes].steady_seconds,
                "s",
                f"simulation {empty[nodes].steady_seconds:.2f}s - plain loop {empty_loop[nodes].steady_seconds:.2f}s",
            )
            for nodes in empty
        ),
        ratio_figure(
            f"seconds per round, {SCALE_NODES} nodes at fraction {SCALE_FRACTION} vs {DEFAULT_NODES} at 1.0",
            scale.steady_seconds,
            empty[DEFAULT_NODES].steady_seconds,
            "s",
            (f"{SCALE_NODES} nodes", f"{DEFAULT_NODES} nodes"),
            "scale-time",
        ),
        ratio_figure(
            f"peak memory, {SCALE_NODES} nodes vs {DEFAULT_NODES}",
            scale.peak_memory_bytes / MEBIBYTE,
            empty[DEFAULT_NODES].peak_memory_bytes / MEBIBYTE,
            " MiB",
            (f"{SCALE_NODES} nodes", f"{DEFAULT_NODES} nodes"),
            "scale-memory",
        ),
        *(
            Figure(
                f"peak memory, {m.label}",
                m.peak_memory_bytes / MEBIBYTE,
                " MiB",
                f"{m.nodes} nodes, " + ("one process" if m.label.startswith("plain") else "whole process tree"),
            )
            for m in (default, empty[DEFAULT_NODES], empty[100], scale, default_loop)
        ),
    ]
    gpu = bench.gpu_section()
    figures += gpu
    for figure in figures:
        print(figure.line(), flush=True)
    measurements = [default, default_loop, *empty.values(), *empty_loop.values(), scale, *bench.gpu_runs]
    report = {
        "command": "python -m sim bench" + (" --quick" if quick else ""),
        "rounds": rounds,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "bench_seconds": time.monotonic() - started,
        "figures": [{**dataclasses.asdict(f), "met": f.met} for f in figures],
        "runs": [dataclasses.asdict(m) for m in measurements],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    echo(
        f"load average before {load_before[0]:.1f}, after {report['machine']['load_average_after'][0]:.1f} "
        f"on {os.cpu_count()} CPUs"
    )
    echo(f"wrote {out} ({report['bench_seconds']:.0f}s)")
    return 0


class _Bench:
    """Runs the workloads of one bench invocation: simulations, plain loops, the GPU section."""

    def __init__(self, app_dir: Path, folder: Path, rounds: int) -> None:
        self.app_dir = app_dir
        self.folder = folder
        self.rounds = rounds
        self.gpu_runs: list[Measurement] = []

    def request(self, label: str, nodes: int, settings: dict[str, Any], preset: str = "cpu") -> RunRequest:
        extra = {
            "num-server-rounds": self.rounds,
            "output-dir": str(self.folder / "outputs"),
            "run-name": label,
            **settings,
        }
        return RunRequest.build(self.app_dir, [], preset=preset, nodes=nodes, extra=extra)

    def simulate(self, label: str, nodes: int, settings: dict[str, Any], gpu_share: float | None = None) -> Measurement:
        """Run the workload through `flwr run`, sampling the SuperLink tree's (or the GPU's) memory."""
        request = self.request(label, nodes, settings, "cpu" if gpu_share is None else "gpu")
        if gpu_share is not None:
            request = dataclasses.replace(
                request, federation={**request.federation, "client-resources-num-gpus": gpu_share}
            )
        superlink = ensure_superlink(request)
        root = superlink.process()
        if root is None:
            raise FlwrCommandError(f"the SuperLink on port {superlink.port} is not running")
        measure = _gpu_used_bytes if gpu_share is not None else lambda: tree_rss(root)
        with PeakSampler(measure) as peak:
            outcome = execute(request, f"bench {label}")
        if not outcome.succeeded:
            raise FlwrCommandError(
                f"bench run {label} ended with status {outcome.status}; see flwr log {outcome.run_id} --show"
            )
        rounds = outcome.metrics()["rounds"]
        seconds = [float(record["seconds"]) for record in rounds]
        accuracy = [float(record["central_accuracy"]) for record in rounds]
        return Measurement(f"simulation {label}", nodes, outcome.seconds, seconds, accuracy, peak.peak_bytes)

    def loop(self, label: str, nodes: int, settings: dict[str, Any]) -> Measurement:
        """Run the same workload in `sim/plain_loop.py`, in a fresh process."""
        config = self.request(label, nodes, settings).config
        config_path = self.folder / f"loop-{label}.config.json"
        result_path = self.folder / f"loop-{label}.json"
        config_path.write_text(json.dumps(config.to_mapping()))
        echo(f"bench plain loop {label}: {nodes} nodes, {self.rounds} rounds in one PyTorch process")
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "sim.plain_loop", str(config_path), str(nodes), str(result_path)],
            cwd=self.app_dir,
            check=True,
        )
        whole = time.monotonic() - started
        result = json.loads(result_path.read_text())
        return Measurement(
            f"plain loop {label}",
            nodes,
            whole,
            result["round_seconds"],
            result["central_accuracy"],
            result["peak_rss_bytes"],
        )

    def gpu_section(self) -> list[Figure]:
        """Clients per second and peak GPU memory at 1.0, 0.25 and 0.1 GPUs per client (CUDA only)."""
        if not torch.cuda.is_available():
            echo("GPU section skipped: no CUDA device")
            return []
        for share in GPU_SHARES:
            self.gpu_runs.append(self.simulate(f"gpu-{share:g}", DEFAULT_NODES, {}, gpu_share=share))
        clients_per_second = {run.label: DEFAULT_NODES / run.steady_seconds for run in self.gpu_runs}
        figures = [
            Figure(
                f"clients per second, {run.label}",
                clients_per_second[run.label],
                "/s",
                f"peak GPU memory {run.peak_memory_bytes / MEBIBYTE:.0f} MiB",
            )
            for run in self.gpu_runs
        ]
        full, quarter = (clients_per_second[run.label] for run in self.gpu_runs[:2])
        detail = f"0.25 GPU per client {quarter:.2f}/s, 1.0 GPU per client {full:.2f}/s"
        figures.append(
            Figure(
                "clients per second, 0.25 vs 1.0 GPU per client",
                quarter / full,
                "x",
                detail,
                TARGETS["gpu-clients"],
                at_least=True,
            )
        )
        return figures


def _gpu_used_bytes() -> int:
    """Memory in use on GPU 0 by all processes (free memory subtracted from the total)."""
    free, total = torch.cuda.mem_get_info(0)
    return total - free
