"""`python -m sim bench`: simulation overhead against the compute floor, from 10 clients a round to 100,000 nodes.

Every figure is measured side by side in one invocation, so the ratios hold on a
loaded machine even when the absolute seconds do not:

1. cohorts: 10, 50 and 100 clients a round (as many nodes, all sampled), with the CNN
   and the 2NN, E=1, B=10, through `flwr run` on the simulation engine and as the same
   local work in one plain PyTorch process (`sim/plain_loop.py`): steady-state seconds
   per round (rounds 2..N; round 1 carries Ray's and the actors' start-up), their ratio,
   and peak memory. The 10-client CNN run is the default workload, whose whole-run
   seconds and final accuracy are compared too;
2. framework overhead per round with clients that do not train (`local-epochs=0`,
   no federated evaluation) at 10 and 100 nodes: the simulation's seconds per round
   minus the plain loop's (which then only evaluates centrally);
3. scale, without training: 1,000 nodes at `fraction-train` 0.01 against 10 at 1.0;
   10,000 nodes at 0.01 against 100 at 1.0 (100 clients a round in both), seconds per
   round and peak memory as ratios; and 100,000 nodes at 0.001 reported (2 rounds).
   More nodes than the embedded MNIST's 4,000 training samples need more data: those
   runs (both sides) use `SCALE_SAMPLES` images, the embedded pool's images repeated,
   as a local dataset (`scale_dataset`);
4. peak memory of every run, summed over the SuperLink's whole process tree.

With a CUDA device, a GPU section trains the default workload with 1.0, 0.25 and
0.1 GPUs per client and reports clients per second and peak GPU memory; without
one it says so and skips it. The figures go to a JSON file (with the load average
before and after, the app's commit and a digest of every simulation's final
weights), one line each to stdout, and the cohorts' seconds per round to a PNG
beside the JSON. `--quick` runs 3 rounds of a subset (`QUICK_SECTIONS`).
`--app DIR` benches another checkout of fedapp (e.g. main's code, for before/after).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch

from fedapp.data import SourceSpec, load_source
from fedapp.data.cache import cache_dir
from fedapp.data.embedded import load_mnist, split_indices
from sim.flwr_cli import FlwrCommandError, echo
from sim.process_memory import PeakSampler, tree_rss
from sim.run import RunRequest, ensure_superlink, execute

FULL_ROUNDS = 10
QUICK_ROUNDS = 3
REPORT_ROUNDS = 2
DEFAULT_NODES = 10
COHORTS = {"cnn": (10, 50, 100), "2nn": (10, 50, 100)}
QUICK_COHORTS = {"cnn": (10,), "2nn": (10, 100)}
EMPTY_UPDATE = {"local-epochs": 0, "fraction-evaluate": 0.0}
SCALE = ((1_000, 0.01, 10), (10_000, 0.01, 100))
REPORT_SCALE = (100_000, 0.001)
SCALE_SAMPLES = 120_000
GPU_SHARES = (1.0, 0.25, 0.1)
SECTIONS = ("cohorts", "overhead", "scale", "report", "gpu")
QUICK_SECTIONS = ("cohorts", "scale")
TARGETS = {
    "steady": 1.15,
    "whole": 2.0,
    "cohort-memory": 1.5,
    "scale-time": 1.2,
    "scale-memory": 1.2,
    "gpu-clients": 2.0,
}
MEBIBYTE = 2**20


@dataclass(frozen=True)
class Measurement:
    """One run of a workload: whole-run seconds, seconds and central accuracy of rounds 0..N, peak memory in bytes.

    `weights` is a digest of a simulation's final global weights (same seed and code
    path: same digest), empty for a plain loop.
    """

    label: str
    nodes: int
    whole_seconds: float
    round_seconds: list[float]
    central_accuracy: list[float]
    peak_memory_bytes: int
    weights: str = ""

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


def memory_figure(name: str, measured: Measurement, floor: Measurement, target: str | None) -> Figure:
    """Peak memory of `measured` against `floor`, as their ratio."""
    labels = (f"{measured.nodes} nodes", f"{floor.nodes} nodes")
    return ratio_figure(
        name, measured.peak_memory_bytes / MEBIBYTE, floor.peak_memory_bytes / MEBIBYTE, " MiB", labels, target
    )


def bench_command(
    app_dir: Path,
    quick: bool,
    out: Path | None,
    sections: tuple[str, ...] | None = None,
    rounds: int | None = None,
) -> int:
    """Run the chosen sections, print one line per figure, write them all to `out`; return the exit code.

    `rounds` overrides the number of rounds of every run but the 100,000-node report
    (default: 10, or 3 with `quick`); the steady state needs at least 3.
    """
    if rounds is not None and rounds < 3:
        raise ValueError(f"--rounds {rounds} is not allowed; allowed: 3 or more (the steady state is rounds 2..N)")
    requested_rounds = rounds
    rounds = rounds or (QUICK_ROUNDS if quick else FULL_ROUNDS)
    chosen = sections or (QUICK_SECTIONS if quick else SECTIONS)
    unknown = [section for section in chosen if section not in SECTIONS]
    if unknown:
        raise ValueError(f"--sections {','.join(unknown)} is not allowed; allowed: {', '.join(SECTIONS)}")
    out = (out or Path(f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json")).absolute()
    if out.exists():
        raise ValueError(f"--out {out} exists; allowed: a file that does not exist yet (results are never overwritten)")
    folder = Path(tempfile.mkdtemp(prefix="fedapp-bench-"))
    load_before = os.getloadavg()
    started = time.monotonic()
    bench = _Bench(app_dir, folder, rounds)
    figures: list[Figure] = []
    cohorts: dict[str, dict[int, tuple[Measurement, Measurement]]] = {}
    if "cohorts" in chosen:
        cohorts = bench.cohorts(QUICK_COHORTS if quick else COHORTS)
        figures += cohort_figures(cohorts)
    if "overhead" in chosen:
        figures += bench.overhead()
    if "scale" in chosen:
        figures += bench.scale(SCALE[1:] if quick else SCALE)
    if "report" in chosen:
        figures += bench.report_scale()
    if "gpu" in chosen:
        figures += bench.gpu_section()
    for figure in figures:
        print(figure.line(), flush=True)
    report = {
        "command": f"python -m sim bench{' --quick' if quick else ''}"
        + (f" --sections {','.join(sections)}" if sections else "")
        + (f" --rounds {requested_rounds}" if requested_rounds else ""),
        "app": {"folder": str(app_dir), "commit": app_commit(app_dir)},
        "rounds": rounds,
        "sections": list(chosen),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "bench_seconds": time.monotonic() - started,
        "figures": [{**dataclasses.asdict(f), "met": f.met} for f in figures],
        "cohorts": {
            model: {str(n): {"simulation": sim.label, "plain_loop": loop.label} for n, (sim, loop) in runs.items()}
            for model, runs in cohorts.items()
        },
        "runs": [dataclasses.asdict(m) for m in bench.runs],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    if cohorts:
        from sim.bench_plot import plot_cohorts  # noqa: PLC0415 (matplotlib only when there is something to draw)

        plot_cohorts({"": report}, out.with_suffix(".png"))
    echo(
        f"load average before {load_before[0]:.1f}, after {report['machine']['load_average_after'][0]:.1f} "
        f"on {os.cpu_count()} CPUs"
    )
    echo(f"wrote {out} ({report['bench_seconds']:.0f}s)")
    shutil.rmtree(folder, ignore_errors=True)
    return 0


def cohort_figures(cohorts: dict[str, dict[int, tuple[Measurement, Measurement]]]) -> list[Figure]:
    """Per model and cohort: steady state against the plain loop, memory of the largest; the default workload."""
    figures = []
    for model, runs in cohorts.items():
        for clients, (simulated, loop) in runs.items():
            figures.append(
                ratio_figure(
                    f"steady-state seconds per round, {model}, {clients} clients a round",
                    simulated.steady_seconds,
                    loop.steady_seconds,
                    "s",
                    ("simulation", "plain loop"),
                    "steady",
                )
            )
        smallest, largest = min(runs), max(runs)
        if largest > smallest:
            figures.append(
                memory_figure(
                    f"peak memory, {model}, {largest} vs {smallest} clients a round",
                    runs[largest][0],
                    runs[smallest][0],
                    "cohort-memory",
                )
            )
    if DEFAULT_NODES in cohorts.get("cnn", {}):
        simulated, loop = cohorts["cnn"][DEFAULT_NODES]
        figures += [
            Figure(
                "default workload: final central accuracy, simulation minus plain loop",
                simulated.central_accuracy[-1] - loop.central_accuracy[-1],
                "",
                f"simulation {simulated.central_accuracy[-1]:.4f}, plain loop {loop.central_accuracy[-1]:.4f}",
            ),
            ratio_figure(
                "default workload: whole run",
                simulated.whole_seconds,
                loop.whole_seconds,
                "s",
                ("simulation", "plain loop"),
                "whole",
            ),
        ]
    return figures


def app_commit(app_dir: Path) -> str:
    """The app folder's git commit, marked `-dirty` when tracked files changed (`unknown` outside git)."""
    git = shutil.which("git")
    if git is None:
        return "unknown"

    def run(*arguments: str) -> str:
        result = subprocess.run([git, "-C", str(app_dir), *arguments], capture_output=True, text=True, check=False)
        return result.stdout.strip() if result.returncode == 0 else ""

    commit = run("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("-dirty" if run("status", "--porcelain", "--untracked-files=no") else "")


def weights_digest(model_file: Path) -> str:
    """SHA-256 over a saved state_dict's names and raw values, in order (equal weights, equal digest)."""
    state = torch.load(model_file, map_location="cpu")
    hasher = hashlib.sha256()
    for key, value in state.items():
        hasher.update(key.encode())
        hasher.update(value.detach().contiguous().numpy().tobytes())
    return hasher.hexdigest()


def scale_dataset(samples: int) -> Path:
    """A local dataset folder with `samples` training images: the embedded MNIST pool, each image repeated.

    Written once into the cache folder (parquet, the hub layout) and reused, so every
    bench trains on the same files; its arrays are cached too (`load_source`), so
    no simulated node decodes the images. Its test split is the embedded test set.
    """
    folder = cache_dir() / f"bench-mnist-{samples}"
    if (folder / "test.parquet").exists():
        load_source(SourceSpec(str(folder)))
        return folder
    import datasets  # noqa: PLC0415 (heavy, needed once)
    from PIL import Image  # noqa: PLC0415

    images, labels = load_mnist()
    test, pool = split_indices()
    repeated = np.resize(pool, samples)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    staging = Path(tempfile.mkdtemp(prefix=folder.name, dir=folder.parent))
    for split, rows in (("train", repeated), ("test", test)):
        table = datasets.Dataset.from_dict(
            {"image": [Image.fromarray(images[i]) for i in rows], "label": labels[rows].tolist()}, features=features
        )
        table.to_parquet(str(staging / f"{split}.parquet"))
    staging.replace(folder)
    load_source(SourceSpec(str(folder)))
    return folder


class _Bench:
    """Runs the workloads of one bench invocation: simulations, plain loops, the GPU section."""

    def __init__(self, app_dir: Path, folder: Path, rounds: int) -> None:
        self.app_dir = app_dir
        self.folder = folder
        self.rounds = rounds
        self.runs: list[Measurement] = []

    def cohorts(self, plan: dict[str, tuple[int, ...]]) -> dict[str, dict[int, tuple[Measurement, Measurement]]]:
        """Every model with its cohort sizes, simulated and in the plain loop, one right after the other."""
        return {
            model: {
                clients: (
                    self.simulate(f"{model}-{clients}", clients, {"model": model}),
                    self.loop(f"{model}-{clients}", clients, {"model": model}),
                )
                for clients in sizes
            }
            for model, sizes in plan.items()
        }

    def overhead(self) -> list[Figure]:
        """Seconds per round that the framework adds when clients do not train, at 10 and 100 nodes."""
        figures = []
        for nodes in (DEFAULT_NODES, 100):
            simulated = self.simulate(f"empty-{nodes}", nodes, EMPTY_UPDATE)
            loop = self.loop(f"empty-{nodes}", nodes, EMPTY_UPDATE)
            figures.append(
                Figure(
                    f"framework overhead per round, {nodes} nodes, no training",
                    simulated.steady_seconds - loop.steady_seconds,
                    "s",
                    f"simulation {simulated.steady_seconds:.2f}s - plain loop {loop.steady_seconds:.2f}s",
                )
            )
        return figures

    def scale(self, comparisons: tuple[tuple[int, float, int], ...]) -> list[Figure]:
        """Many registered nodes, few sampled, against as many nodes all sampled: time per round and memory."""
        figures = []
        pool = len(split_indices()[1])
        for registered, fraction, sampled in comparisons:
            dataset = {} if registered <= pool else {"dataset": str(scale_dataset(SCALE_SAMPLES))}
            small = self.simulate(f"empty-{sampled}-of-{sampled}", sampled, {**EMPTY_UPDATE, **dataset})
            large = self.simulate(
                f"empty-{sampled}-of-{registered}",
                registered,
                {**EMPTY_UPDATE, **dataset, "fraction-train": fraction},
            )
            figures += [
                ratio_figure(
                    f"seconds per round, {registered} nodes at fraction {fraction} vs {sampled} at 1.0",
                    large.steady_seconds,
                    small.steady_seconds,
                    "s",
                    (f"{registered} nodes", f"{sampled} nodes"),
                    "scale-time",
                ),
                memory_figure(f"peak memory, {registered} nodes vs {sampled}", large, small, "scale-memory"),
            ]
        return figures

    def report_scale(self) -> list[Figure]:
        """100,000 registered nodes, 100 sampled a round, without training: reported, not compared."""
        registered, fraction = REPORT_SCALE
        settings = {**EMPTY_UPDATE, "dataset": str(scale_dataset(SCALE_SAMPLES)), "fraction-train": fraction}
        run = self.simulate(f"empty-report-{registered}", registered, settings, rounds=REPORT_ROUNDS)
        return [
            Figure(
                f"{registered} nodes at fraction {fraction}: seconds per round",
                run.steady_seconds,
                "s",
                f"whole run {run.whole_seconds:.0f}s, round 0 done after start-up and describing every node",
            ),
            Figure(
                f"{registered} nodes at fraction {fraction}: peak memory",
                run.peak_memory_bytes / MEBIBYTE,
                " MiB",
                "whole process tree",
            ),
        ]

    def request(
        self, label: str, nodes: int, settings: dict[str, Any], preset: str = "cpu", rounds: int | None = None
    ) -> RunRequest:
        extra = {
            "num-server-rounds": rounds or self.rounds,
            "output-dir": str(self.folder / "outputs"),
            "run-name": label,
            **settings,
        }
        return RunRequest.build(self.app_dir, [], preset=preset, nodes=nodes, extra=extra)

    def simulate(
        self,
        label: str,
        nodes: int,
        settings: dict[str, Any],
        gpu_share: float | None = None,
        rounds: int | None = None,
    ) -> Measurement:
        """Run the workload through `flwr run`, sampling the SuperLink tree's (or the GPU's) memory."""
        request = self.request(label, nodes, settings, "cpu" if gpu_share is None else "gpu", rounds)
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
        digest = weights_digest(outcome.folder / "final_model.pt")
        measurement = Measurement(
            f"simulation {label}", nodes, outcome.seconds, seconds, accuracy, peak.peak_bytes, digest
        )
        self.runs.append(measurement)
        return measurement

    def loop(self, label: str, nodes: int, settings: dict[str, Any]) -> Measurement:
        """Run the same workload in `sim/plain_loop.py`: a fresh process with one worker per simulated actor.

        The simulation runs as many clients at once as it has Ray actors (CPUs over
        `client-resources-num-cpus`), one torch thread each; the loop uses as many
        single-threaded workers. Its memory is sampled over its process tree.
        """
        request = self.request(label, nodes, settings)
        workers = max(1, (os.cpu_count() or 1) // int(request.federation["client-resources-num-cpus"]))
        config_path = self.folder / f"loop-{label}.config.json"
        result_path = self.folder / f"loop-{label}.json"
        config_path.write_text(json.dumps(request.config.to_mapping()))
        echo(f"bench plain loop {label}: {nodes} nodes, {self.rounds} rounds in {workers} PyTorch worker(s)")
        command = [sys.executable, "-m", "sim.plain_loop", str(config_path), str(nodes), str(result_path), str(workers)]
        started = time.monotonic()
        with subprocess.Popen(command, cwd=self.app_dir) as process:
            root = psutil.Process(process.pid)
            with PeakSampler(lambda: tree_rss(root)) as peak:
                code = process.wait()
        if code != 0:
            raise FlwrCommandError(f"the plain loop {label} exited with code {code}")
        whole = time.monotonic() - started
        result = json.loads(result_path.read_text())
        measurement = Measurement(
            f"plain loop {label}",
            nodes,
            whole,
            result["round_seconds"],
            result["central_accuracy"],
            max(peak.peak_bytes, result["peak_rss_bytes"]),
        )
        self.runs.append(measurement)
        return measurement

    def gpu_section(self) -> list[Figure]:
        """Clients per second and peak GPU memory at 1.0, 0.25 and 0.1 GPUs per client (CUDA only)."""
        if not torch.cuda.is_available():
            echo("GPU section skipped: no CUDA device")
            return []
        gpu_runs = [self.simulate(f"gpu-{share:g}", DEFAULT_NODES, {}, gpu_share=share) for share in GPU_SHARES]
        clients_per_second = {run.label: DEFAULT_NODES / run.steady_seconds for run in gpu_runs}
        figures = [
            Figure(
                f"clients per second, {run.label}",
                clients_per_second[run.label],
                "/s",
                f"peak GPU memory {run.peak_memory_bytes / MEBIBYTE:.0f} MiB",
            )
            for run in gpu_runs
        ]
        full, quarter = (clients_per_second[run.label] for run in gpu_runs[:2])
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
