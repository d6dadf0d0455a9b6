"""`python -m sim compare`: several strategies on identical partitions, seeds and sampling; one table, one picture.

Every (strategy, seed) runs through `flwr run`, one after another on the same local
SuperLink, then the centralized baseline of that seed (`sim/centralized.py`). The
results go to `--out`:

- `runs/<strategy>-<seed>/` and `runs/centralized-<seed>/`: each run's own outputs;
  with `-c tracking=...` the runs are tracked under those names too, grouped so
  their curves overlay: `tensorboard --logdir <out>/runs`, and MLflow's experiment
  named after `--out`;
- `summary.csv`, `report.md`, `curves.png` with its data `curves.json` (per strategy
  and round, mean and sd over seeds), `runs.json` (every run's figures and per-round
  curves; and `privacy.png` when some runs are differentially private): rewritten
  after every run, so progress is visible and an interrupted comparison keeps what it
  measured.

A run that fails is a row marked failed, never skipped; the command then exits 1.

Identical conditions, by construction and checked:
- the data settings (`DataSpec`: dataset, partitioner and its parameters, validation
  share, public slice, seed) must be the same for every strategy of a seed, or the
  comparison is refused before anything runs. When any strategy distils on a public
  set (or validates a server distillation), every run is given the same explicit
  `public-size` (and `distill-validation-size`), so all hold the same private partitions;
- model initialization and node sampling derive from the seed alone. After the runs,
  the report checks that every run of a seed with the same model (the centralized
  baseline included) starts from the same round-0 central loss.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedapp import tasks
from fedapp.config import DEFAULT_PUBLIC_SIZE, DEFAULT_SERVER_VALIDATION_SIZE, ConfigError, RunConfig
from fedapp.data import DataSpec
from fedapp.outputs import METRICS_FILE
from fedapp.registry import STRATEGIES
from sim.centralized import CentralizedRequest, train_centralized
from sim.flwr_cli import FlwrCommandError, echo
from sim.overrides import parse_overrides
from sim.paper_presets import PAPER_PRESETS
from sim.report import (
    CENTRALIZED,
    CURVES_DATA_FILE,
    CURVES_FILE,
    PRIVACY_FILE,
    REPORT_FILE,
    RUNS_FILE,
    SUMMARY_FILE,
    is_private,
    plot_curves,
    plot_privacy_utility,
    write_curves_json,
    write_report,
    write_runs_json,
    write_summary_csv,
)
from sim.run import RunRequest, ensure_superlink, execute
from sim.summary import COMPLETED, METRIC_OF_TASK, RunResult, best_value, summarize

RUNS_FOLDER = "runs"
DEFAULT_TARGET = 0.9
DEFAULT_NODES = 10
RESERVED_KEYS = ("seed", "output-dir", "run-name")


@dataclass(frozen=True)
class Contender:
    """One line of the comparison: a label, its strategy and the settings only it gets."""

    label: str
    strategy: str
    overrides: dict[str, Any]


@dataclass(frozen=True)
class CompareRequest:
    """Everything a comparison needs, as given on the command line (or by a preset).

    `common` applies to every run below each strategy's own settings; an explicit
    `--rounds` (`rounds`) applies to every run above them.
    """

    contenders: tuple[Contender, ...]
    seeds: tuple[int, ...]
    nodes: int
    common: dict[str, Any]
    rounds: int | None
    target: float
    centralized_epochs: int | None
    world_size: int
    resources: str
    out: Path
    command: str


@dataclass(frozen=True)
class PlannedRun:
    """A validated federated run of the comparison."""

    label: str
    seed: int
    request: RunRequest


@dataclass(frozen=True)
class Plan:
    """Every run of the comparison, validated before any starts."""

    runs: list[PlannedRun]
    baselines: dict[int, CentralizedRequest]
    settings: dict[str, dict[str, Any]]


def parse_contenders(strategies: str, settings: Sequence[tuple[str, str]]) -> tuple[Contender, ...]:
    """Parse `--strategies a,b,label=c` and `--set LABEL 'k=v ...'` into contenders.

    Raises
    ------
    ConfigError
        On an unknown strategy, a repeated or unsafe label, or settings for no contender.
    """
    contenders: dict[str, Contender] = {}
    for item in (part.strip() for part in strategies.split(",")):
        if not item:
            continue
        label, _, name = item.partition("=") if "=" in item else (item, "", item)
        if name not in STRATEGIES:
            raise ConfigError(f"--strategies: unknown strategy {name!r}; allowed: {', '.join(STRATEGIES)}")
        if label in contenders or label == CENTRALIZED or not _is_plain_label(label):
            raise ConfigError(
                f"--strategies: label {label!r} is repeated, reserved or not a folder name; "
                "allowed: distinct names of letters, digits, '.', '_' and '-' other than 'centralized'"
            )
        contenders[label] = Contender(label, name, {})
    if len(contenders) < 1:
        raise ConfigError("--strategies is empty; allowed: one or more of " + ", ".join(STRATEGIES))
    for label, text in settings:
        if label not in contenders:
            raise ConfigError(f"--set {label!r}: no such strategy label; allowed: {', '.join(contenders)}")
        overrides = parse_overrides([text])
        if "strategy" in overrides:
            raise ConfigError(f"--set {label!r}: 'strategy' is given by --strategies (write {label}=<strategy>)")
        contenders[label].overrides.update(overrides)
    return tuple(contenders.values())


def _is_plain_label(label: str) -> bool:
    return bool(label) and all(c.isalnum() or c in "._-" for c in label) and label not in (".", "..")


def plan(request: CompareRequest, app_dir: Path) -> Plan:
    """Validate every run and the data settings they share (raises `ConfigError` before any work)."""
    for key in RESERVED_KEYS:
        if key in request.common or any(key in c.overrides for c in request.contenders):
            raise ConfigError(f"run-config key {key!r} is set by compare for each run; use --seeds and --out instead")
    runs_dir = str(request.out.expanduser().absolute() / RUNS_FOLDER)
    rounds = {} if request.rounds is None else {"num-server-rounds": request.rounds}
    shared = {**_grouped(request), **request.common, **rounds, **_shared_public_set(request)}
    runs, baselines, settings = [], {}, {}
    for seed in request.seeds:
        data_specs: dict[str, DataSpec] = {}
        for contender in request.contenders:
            extra = {**shared, **contender.overrides, **rounds, "strategy": contender.strategy, "seed": seed}
            run = RunRequest.build(
                app_dir,
                [],
                request.resources,
                request.nodes,
                extra={**extra, "output-dir": runs_dir, "run-name": f"{contender.label}-{seed}"},
            )
            runs.append(PlannedRun(contender.label, seed, run))
            settings.setdefault(contender.label, _visible_settings(run.config))
            data_specs[contender.label] = DataSpec.from_config(run.config)
        _check_same_data(data_specs)
        baselines[seed] = CentralizedRequest.build(
            app_dir,
            [],
            request.nodes,
            request.world_size,
            request.centralized_epochs,
            extra={**shared, "seed": seed, "output-dir": runs_dir, "run-name": f"{CENTRALIZED}-{seed}"},
        )
        baseline = baselines[seed]
        description = f"DDP, {baseline.world_size} ranks, {baseline.epochs} epochs"
        settings.setdefault(CENTRALIZED, {**_visible_settings(baseline.config), "strategy": description})
    return Plan(runs, baselines, settings)


def _grouped(request: CompareRequest) -> dict[str, str]:
    """The comparison's MLflow experiment: its `--out` folder's name (an explicit `tracking-experiment` wins).

    Its TensorBoard folder is `<out>/runs`, where every run's event files already are.
    """
    return {"tracking-experiment": request.out.expanduser().absolute().name}


def _shared_public_set(request: CompareRequest) -> dict[str, int]:
    """The reserved slices for every run when a strategy needs them and no run sizes them: same partitions for all.

    `public-size` when a strategy distils on a public set, `distill-validation-size`
    when one distils on the server (and so validates on a labelled server split).
    """
    specs = [STRATEGIES[contender.strategy] for contender in request.contenders]
    needed = {
        "public-size": (DEFAULT_PUBLIC_SIZE, any(spec.uses_public_set for spec in specs)),
        "distill-validation-size": (DEFAULT_SERVER_VALIDATION_SIZE, any(spec.distils_on_server for spec in specs)),
    }
    shared = {}
    for key, (size, needs) in needed.items():
        explicit = key in request.common or any(key in c.overrides for c in request.contenders)
        if needs and not explicit:
            shared[key] = size
    return shared


def _visible_settings(config: RunConfig) -> dict[str, Any]:
    """The config keys a reader of the report needs (those compare sets per run left out)."""
    return {key: value for key, value in config.to_mapping().items() if key not in RESERVED_KEYS}


def _check_same_data(specs: dict[str, DataSpec]) -> None:
    """Refuse strategies of one seed that would not see the same partitions and test set."""
    (first_label, first), *others = specs.items()
    for label, spec in others:
        if spec != first:
            raise ConfigError(
                f"strategies {first_label!r} and {label!r} would train on different data ({first} vs {spec}); "
                "allowed: the same data settings for every strategy (set them with -c)"
            )


def run_comparison(request: CompareRequest, app_dir: Path) -> int:
    """Run the whole comparison and write its outputs; returns the exit code (1 if any run failed)."""
    comparison = plan(request, app_dir)
    out = request.out.expanduser().absolute()
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out} already holds files; choose a new folder (compare never writes over results)")
    (out / RUNS_FOLDER).mkdir(parents=True, exist_ok=True)
    ensure_superlink(comparison.runs[0].request)
    started, results = time.monotonic(), []
    total = len(comparison.runs) + len(comparison.baselines)
    for seed in request.seeds:
        for run in (r for r in comparison.runs if r.seed == seed):
            _announce(len(results) + 1, total, run.label, seed, started)
            results.append(_federated_run(run))
            _finish(results, request, comparison, out, started)
        _announce(len(results) + 1, total, CENTRALIZED, seed, started)
        results.append(_centralized_run(comparison.baselines[seed], seed))
        _finish(results, request, comparison, out, started)
    failed = [r for r in results if not r.completed]
    echo(
        f"compare: {len(results) - len(failed)}/{len(results)} runs completed in {_clock(started)}; "
        f"see {out / REPORT_FILE}"
    )
    return 1 if failed else 0


def _announce(index: int, total: int, label: str, seed: int, started: float) -> None:
    echo(f"compare run {index}/{total}: {label} seed {seed} (elapsed {_clock(started)})")


def _clock(started: float) -> str:
    minutes, seconds = divmod(int(time.monotonic() - started), 60)
    return f"{minutes}m{seconds:02d}s"


def _federated_run(run: PlannedRun) -> RunResult:
    """Submit one run and collect its records; a run that cannot start or fails is a failed result."""
    folder = Path(run.request.config.output_dir) / run.request.config.run_name
    try:
        outcome = execute(run.request, label=f"[{run.label} seed {run.seed}]")
    except FlwrCommandError as error:
        return RunResult(run.label, run.seed, f"failed: {error}", [], 0.0, str(folder))
    status = COMPLETED if outcome.succeeded else f"failed ({outcome.status})"
    return RunResult(run.label, run.seed, status, _records(outcome.folder), outcome.seconds, str(outcome.folder))


def _centralized_run(request: CentralizedRequest, seed: int) -> RunResult:
    """Train one centralized baseline; a crash is a failed result."""
    folder = Path(request.config.output_dir) / request.config.run_name
    started = time.monotonic()
    try:
        train_centralized(request)
        status = COMPLETED
    except Exception as error:  # noqa: BLE001 (any crash of the baseline is reported, the comparison goes on)
        status = f"failed: {type(error).__name__}: {error}"
    return RunResult(CENTRALIZED, seed, status, _records(folder), time.monotonic() - started, str(folder))


def _records(folder: Path) -> list[dict[str, Any]]:
    """A run's per-round records, or none if it wrote no metrics."""
    path = folder / METRICS_FILE
    return json.loads(path.read_text())["rounds"] if path.exists() else []


def _finish(results: list[RunResult], request: CompareRequest, comparison: Plan, out: Path, started: float) -> None:
    """Report the run that just ended and rewrite the comparison's outputs."""
    last = results[-1]
    task = comparison.runs[0].request.config.task
    metric = METRIC_OF_TASK[task]
    final = f"final {tasks.headline('central', task, last.rounds[-1])}" if last.rounds else "no metrics"
    echo(
        f"compare: {last.label} seed {last.seed} {last.status}: {final} in {last.seconds:.0f}s "
        f"(elapsed {_clock(started)})"
    )
    labels = [c.label for c in request.contenders] + [CENTRALIZED]
    rows = [summarize(label, [r for r in results if r.label == label], request.target, metric) for label in labels]
    rows = [row for row in rows if row["runs"]]
    write_summary_csv(rows, out / SUMMARY_FILE, metric)
    write_runs_json(request.command, results, request.target, out / RUNS_FILE, metric)
    curves = {label: [r.rounds for r in results if r.label == label and r.completed] for label in labels[:-1]}
    baselines = [
        best_value(r.rounds, metric.key) for r in results if r.label == CENTRALIZED and r.completed and r.rounds
    ]
    baseline = sum(baselines) / len(baselines) if baselines else None
    plot_curves(curves, baseline, request.target, out / CURVES_FILE, _title(comparison), metric)
    write_curves_json(curves, out / CURVES_DATA_FILE, metric)
    if any(is_private(label, comparison.settings) for label in labels):
        plot_privacy_utility(rows, comparison.settings, out / PRIVACY_FILE, _title(comparison), metric)
    write_report(
        out / REPORT_FILE,
        request.command,
        rows,
        results,
        comparison.settings,
        _start_checks(results, comparison),
        metric,
    )


def _title(comparison: Plan) -> str:
    first = comparison.runs[0].request
    return (
        f"{first.config.model} · {first.config.dataset} · {first.config.partitioner} · {first.num_nodes} nodes · "
        f"seeds {', '.join(str(s) for s in sorted({r.seed for r in comparison.runs}))}"
    )


def _start_checks(results: list[RunResult], comparison: Plan) -> list[str]:
    """Per seed and model: did every run start from the same round-0 central loss (same init, same test set)?"""
    models = {label: settings["model"] for label, settings in comparison.settings.items()}
    groups: dict[tuple[int, str], dict[str, float]] = {}
    for r in results:
        if r.rounds and r.rounds[0]["round"] == 0:
            groups.setdefault((r.seed, models[r.label]), {})[r.label] = r.rounds[0]["central_loss"]
    lines = []
    for (seed, model), losses in sorted(groups.items()):
        same = len(set(losses.values())) == 1
        values = ", ".join(f"{label} {loss:.6f}" for label, loss in losses.items())
        lines.append(
            f"seed {seed}, model {model}: {'identical' if same else 'DIFFERENT'} round-0 central loss ({values})"
        )
    return lines


def build_request(  # noqa: PLR0913 (one keyword per command-line option)
    *,
    strategies: str | None,
    preset: str | None,
    settings: Sequence[tuple[str, str]],
    override_texts: Sequence[str],
    rounds: int | None,
    nodes: int | None,
    seeds: str | None,
    target: float | None,
    centralized_epochs: int | None,
    world_size: int,
    resources: str,
    out: Path,
    command: str,
) -> CompareRequest:
    """Combine the command line with a preset's defaults (explicit options win) and check the plain values."""
    if preset is not None and strategies is not None:
        raise ConfigError("--strategies and --preset are exclusive: a preset names its own strategies")
    chosen = PAPER_PRESETS[preset] if preset is not None else None
    if chosen is None and strategies is None:
        raise ConfigError("give --strategies a,b,... or --preset " + "|".join(PAPER_PRESETS))
    contenders = parse_contenders(
        chosen.strategies if chosen else strategies or "", [*(chosen.settings if chosen else ()), *settings]
    )
    # the user's -c may repeat a preset's setting (and wins); within the -c options a key may appear once
    common = {**parse_overrides([chosen.common if chosen else ""]), **parse_overrides(list(override_texts))}
    if chosen is not None:
        common.setdefault("num-server-rounds", chosen.rounds)
    target = target if target is not None else chosen.target if chosen else DEFAULT_TARGET
    if not 0 < target <= 1:
        raise ConfigError(
            f"--target = {target} is not allowed; allowed: an accuracy (or R² for a regression) in (0, 1]"
        )
    return CompareRequest(
        contenders=contenders,
        seeds=_parse_seeds(seeds) if seeds is not None else chosen.seeds if chosen else (0,),
        nodes=nodes if nodes is not None else chosen.nodes if chosen else DEFAULT_NODES,
        common=common,
        rounds=rounds,
        target=target,
        centralized_epochs=centralized_epochs
        if centralized_epochs is not None
        else chosen.centralized_epochs
        if chosen
        else None,
        world_size=world_size,
        resources=resources,
        out=out,
        command=command,
    )


def _parse_seeds(text: str) -> tuple[int, ...]:
    """`0,1,2` -> (0, 1, 2): distinct integers >= 0."""
    try:
        seeds = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        seeds = ()
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds = {text!r} is not allowed; allowed: distinct integers >= 0 separated by commas")
    return seeds


def compare_command(args: argparse.Namespace) -> int:
    """The `compare` subcommand; returns the process exit code."""
    request = build_request(
        strategies=args.strategies,
        preset=args.preset,
        settings=[tuple(pair) for pair in args.set],
        override_texts=args.run_config,
        rounds=args.rounds,
        nodes=args.nodes,
        seeds=args.seeds,
        target=args.target,
        centralized_epochs=args.centralized_epochs,
        world_size=args.world_size,
        resources=args.resources,
        out=args.out,
        command=shlex.join(["python", "-m", "sim", *sys.argv[1:]]),
    )
    return run_comparison(request, args.app.resolve())
