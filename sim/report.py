"""A comparison's outputs: `summary.csv`, `report.md`, `curves.png` and `runs.json`.

The table is the same in the CSV (one numeric column per quantity, for scripts) and in
the report (mean ± standard deviation, for people). The picture has the task's central
metric (accuracy, or R² for a regression: `summary.Metric`) against rounds and against
cumulative training traffic, one line per strategy (the mean over its completed seeds,
with a ±1 standard deviation band; a dashed line for the clients' own models where a
strategy keeps them), the centralized baseline's best value as a horizontal line, and
the target as a dotted line.

When some runs are differentially private, the report adds a privacy table (noise
multiplier, epsilon at delta and for which neighbours, accuracy) and `privacy.png`:
final accuracy against epsilon, one point per noise multiplier (mean ± standard
deviation over seeds), the non-private runs and the centralized baseline as lines.

`runs.json` keeps every run's own figures (per seed) and its per-round curves, so a
per-seed or per-round number quoted in the docs can be traced to a small file that
lives beside the summary, without the runs' folders.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

from fedapp.atomic import atomic_write, atomic_write_text
from sim.summary import (
    ACCURACY,
    MEGABYTE,
    Metric,
    RunResult,
    best_value,
    columns,
    final_value,
    rounds_to_target,
    upload_per_client_round,
)
from strategies.accounting import NEIGHBOURING_RELATIONS

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, MaxNLocator

SUMMARY_FILE = "summary.csv"
REPORT_FILE = "report.md"
CURVES_FILE = "curves.png"
CURVES_DATA_FILE = "curves.json"
RUNS_FILE = "runs.json"
CURVE_FIELDS = (
    "round",
    "central_accuracy",
    "central_r2",
    "central_rmse",
    "central_mae",
    "client_accuracy_mean",
    "client_validation_accuracy_mean",
    "consensus_accuracy",
    "distill_fell_back",
    "nodes_replied",
    "epsilon",
)
"""Per-round fields `runs.json` keeps for each run (those a run records), rounded to 4 digits."""
PRIVACY_FILE = "privacy.png"
CENTRALIZED = "centralized"


def write_summary_csv(rows: Sequence[dict[str, Any]], path: Path, metric: Metric = ACCURACY) -> None:
    """Write the summary rows with the columns `columns(metric)` (empty cells for missing values)."""
    buffer = io.StringIO()
    names = columns(metric)
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row[key] is None else _csv_value(row[key]) for key in names})
    atomic_write_text(path, buffer.getvalue())


def write_runs_json(
    command: str, results: Sequence[RunResult], target: float, path: Path, metric: Metric = ACCURACY
) -> None:
    """Write every run's label, seed, status, own figures and per-round curves (`CURVE_FIELDS`) as JSON.

    One run per line, so the file stays readable and its diffs small.
    """
    runs = [
        {
            "strategy": r.label,
            "seed": r.seed,
            "status": r.status,
            "wall_seconds": round(r.seconds, 1),
            **_run_figures(r.rounds, target, metric),
            "curves": {
                field: [_rounded(record.get(field)) for record in r.rounds]
                for field in CURVE_FIELDS
                if any(record.get(field) is not None for record in r.rounds)
            },
        }
        for r in results
    ]
    header = json.dumps({"command": command, f"target_{metric.name}": target})[:-1]
    lines = ",\n".join(json.dumps(run) for run in runs)
    atomic_write_text(path, f'{header}, "runs": [\n{lines}\n]}}\n')


def _run_figures(rounds: list[dict[str, Any]], target: float, metric: Metric = ACCURACY) -> dict[str, Any]:
    """One run's final and best metric, rounds to `target` and upload per client per round (None without rounds)."""
    final, best = f"final_{metric.name}", f"best_{metric.name}"
    if not rounds:
        return {final: None, best: None, "rounds_to_target": None, "upload_bytes": None}
    return {
        final: _rounded(final_value(rounds, metric.key)),
        best: _rounded(best_value(rounds, metric.key)),
        "rounds_to_target": rounds_to_target(rounds, target, metric.key),
        "upload_bytes": upload_per_client_round(rounds),
    }


def _rounded(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def _csv_value(value: Any) -> Any:
    return round(value, 6) if isinstance(value, float) else value


def markdown_table(rows: Sequence[dict[str, Any]], metric: Metric = ACCURACY) -> str:
    """The summary as a Markdown table: mean ± std over seeds, megabytes, bytes, seconds.

    A column for the nodes' own models appears for a classification, and one for the
    clients' own models when a strategy keeps them (FD, FedMD).
    """
    name, label = metric.name, metric.label
    target = rows[0][f"target_{name}"] if rows else 0.0
    extras = "".join(f" final {extra.upper()} |" for extra in metric.extras)
    personal = metric == ACCURACY
    clients = any(row["client_accuracy_final_mean"] is not None for row in rows)
    header = (
        f"| strategy | seeds (failed) | final {label} | best {label} |{extras} "
        + ("nodes' own models [min, max] | " if personal else "")
        + ("client models final (best) | " if clients else "")
        + f"rounds to {target:.2f} | MB up to {target:.2f} | MB down to {target:.2f} | "
        "upload per client per round (B) | total MB up + down | wall time (s) |"
    )
    lines = [header, "|" + "---|" * (10 + len(metric.extras) + personal + clients)]
    for row in rows:
        reached = f"{row['reached_target']}/{row['runs'] - row['failed']}"
        rounds = (
            f"{_pm(row['rounds_to_target_mean'], row['rounds_to_target_std'], '.1f')} ({reached})"
            if row["reached_target"]
            else f"not reached ({reached})"
        )
        extra_cells = "".join(
            f" {_pm(row[f'final_{extra}_mean'], row[f'final_{extra}_std'], '.2f')} |" for extra in metric.extras
        )
        client_cell = (
            f"{_pm(row['client_accuracy_final_mean'], row['client_accuracy_final_std'], '.4f')} "
            f"({_pm(row['client_accuracy_best_mean'], row['client_accuracy_best_std'], '.4f')}) | "
            if row["client_accuracy_final_mean"] is not None
            else f"{MISSING} | "
        )
        lines.append(
            f"| {row['strategy']} | {row['runs']} ({row['failed']}) | "
            f"{_pm(row[f'final_{name}_mean'], row[f'final_{name}_std'], '.4f')} | "
            f"{_pm(row[f'best_{name}_mean'], row[f'best_{name}_std'], '.4f')} |{extra_cells} "
            + (f"{_personalized(row)} | " if personal else "")
            + (client_cell if clients else "")
            + f"{rounds} | "
            f"{_number(row['mb_up_to_target'], '.1f')} | {_number(row['mb_down_to_target'], '.1f')} | "
            f"{_number(row['upload_bytes_per_client_round'], ',.0f')} | "
            f"{_number(row['total_mb'], '.1f')} | {_number(row['wall_seconds_mean'], '.0f')} |"
        )
    return "\n".join(lines)


def _pm(mean: float | None, std: float | None, spec: str) -> str:
    """'mean ± std', 'mean' (one run) or 'failed' (no completed run)."""
    if mean is None:
        return "failed"
    return f"{mean:{spec}} ± {std:{spec}}" if std is not None else f"{mean:{spec}}"


MISSING = "\u2013"  # an en dash marks a figure a run does not have


def _personalized(row: dict[str, Any]) -> str:
    """'mean ± std [min, max]' of the nodes' own models' accuracy, or a dash without federated evaluation."""
    if row["personalized_accuracy_mean"] is None:
        return MISSING
    spread = f"[{row['personalized_accuracy_min']:.3f}, {row['personalized_accuracy_max']:.3f}]"
    return f"{_pm(row['personalized_accuracy_mean'], row['personalized_accuracy_std'], '.4f')} {spread}"


def _number(value: float | None, spec: str) -> str:
    return MISSING if value is None else f"{value:{spec}}"


def runs_table(results: Sequence[RunResult], target: float, metric: Metric = ACCURACY) -> str:
    """Every run on its own line: status, final metric, rounds to target, time, folder."""
    lines = [
        f"| strategy | seed | status | final {metric.label} | rounds to {target:.2f} | wall time (s) | folder |",
        "|" + "---|" * 7,
    ]
    for r in results:
        final = f"{final_value(r.rounds, metric.key):.4f}" if r.rounds else MISSING
        reached = rounds_to_target(r.rounds, target, metric.key) if r.rounds else None
        lines.append(
            f"| {r.label} | {r.seed} | {r.status} | {final} | {MISSING if reached is None else reached} | "
            f"{r.seconds:.0f} | {r.folder} |"
        )
    return "\n".join(lines)


def plot_curves(
    curves: dict[str, list[list[dict[str, Any]]]],
    baseline: float | None,
    target: float,
    path: Path,
    title: str,
    metric: Metric = ACCURACY,
) -> None:
    """Draw the metric vs round and vs cumulative MB for each strategy's runs (`curves[label]`).

    When the runs evaluate on nodes (classification), a third panel shows the nodes'
    own models' mean accuracy per round (personalised accuracy).
    """
    personal = _has_personalized(curves)
    figure, axes = plt.subplots(1, 3 if personal else 2, figsize=(19 if personal else 13, 5))
    by_round, by_traffic = axes[0], axes[1]
    for index, (label, runs) in enumerate(curves.items()):
        if not runs:
            continue
        style = {
            "color": f"C{index % 10}",
            "label": label,
            "marker": "o" if len(runs[0]) <= 30 else None,
            "markersize": 3,
        }
        rounds, accuracy, spread = _mean_curve(runs, lambda records: _values(records, metric.key))
        _, traffic, _ = _mean_curve(runs, _cumulative_megabytes)
        by_round.plot(rounds, accuracy, **style)
        if spread is not None:
            by_round.fill_between(rounds, accuracy - spread, accuracy + spread, color=style["color"], alpha=0.15)
        trained = rounds >= 1
        by_traffic.plot(traffic[trained], accuracy[trained], **style)
        if any(r.get("client_accuracy_mean") is not None for r in runs[0]):
            _, clients, _ = _mean_curve(runs, _client_accuracies)
            dashed = {**style, "label": f"{label}: client models", "linestyle": "--", "marker": None}
            by_round.plot(rounds, clients, **dashed)
            by_traffic.plot(traffic[trained], clients[trained], **dashed)
        if personal:
            _plot_personalized(axes[2], runs, style)
    for axis in (by_round, by_traffic):
        if baseline is not None:
            axis.axhline(
                baseline, color="black", linestyle="--", linewidth=1.2, label=f"centralized (DDP), best {baseline:.3f}"
            )
        axis.axhline(target, color="grey", linestyle=":", linewidth=1, label=f"target {target:.2f}")
        axis.set_ylabel(f"central {metric.label} (held-out test set)")
        axis.grid(alpha=0.3)
        axis.set_ylim(_accuracy_floor(curves, target, metric.key), 1.0)
    by_round.set(xlabel="round", title=f"{metric.label[0].upper()}{metric.label[1:]} per round")
    by_round.xaxis.set_major_locator(MaxNLocator(integer=True))
    by_traffic.set(
        xlabel="cumulative training traffic, up + down (MB, log scale)",
        title=f"{metric.label[0].upper()}{metric.label[1:]} per megabyte",
        xscale="log",
    )
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    by_traffic.xaxis.set_major_formatter(plain)
    by_traffic.xaxis.set_minor_formatter(
        FuncFormatter(lambda value, _: f"{value:g}" if _is_leading_digit(value, (2, 5)) else "")
    )
    handles, labels = by_round.get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), frameon=False)
    figure.suptitle(title)
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    atomic_write(path, lambda file: figure.savefig(file, format="png", dpi=100))
    plt.close(figure)


def write_curves_json(curves: dict[str, list[list[dict[str, Any]]]], path: Path, metric: Metric = ACCURACY) -> None:
    """The data `plot_curves` draws, as JSON: per strategy, per round, the mean and sample
    std over its runs of the central metric (accuracy, or R²), the cumulative traffic and
    (when the runs evaluate on nodes) the nodes' own models' mean accuracy; null where undefined."""
    data = {}
    for label, runs in curves.items():
        if not runs:
            continue
        rounds, values, spread = _mean_curve(runs, lambda records: _values(records, metric.key))
        _, traffic, _ = _mean_curve(runs, _cumulative_megabytes)
        entry = {
            "runs": len(runs),
            "round": rounds.tolist(),
            f"{metric.key}_mean": _nulls(values),
            f"{metric.key}_std": None if spread is None else _nulls(spread),
            "cumulative_mb_mean": traffic.tolist(),
        }
        if _has_personalized({label: runs}):
            _, personal, personal_spread = _mean_curve(runs, _personalized_accuracies)
            entry["personalized_accuracy_mean"] = _nulls(personal)
            entry["personalized_accuracy_std"] = None if personal_spread is None else _nulls(personal_spread)
        data[label] = entry
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")


def _nulls(values: np.ndarray) -> list[float | None]:
    """`values` as a list, NaN (a round without the metric) as None."""
    return [None if np.isnan(value) else float(value) for value in values]


def _has_personalized(curves: dict[str, list[list[dict[str, Any]]]]) -> bool:
    return any(r.get("personalized_accuracy_mean") is not None for runs in curves.values() for rs in runs for r in rs)


def _plot_personalized(axis: Any, runs: list[list[dict[str, Any]]], style: dict[str, Any]) -> None:
    """The mean over runs of the nodes' own models' mean accuracy, per round that has it."""
    rounds, accuracy, spread = _mean_curve(runs, _personalized_accuracies)
    present = ~np.isnan(accuracy)
    axis.plot(rounds[present], accuracy[present], **style)
    if spread is not None:
        low, high = (accuracy - spread)[present], (accuracy + spread)[present]
        axis.fill_between(rounds[present], low, high, color=style["color"], alpha=0.15)
    axis.set(
        xlabel="round", ylabel="accuracy on the nodes' validation splits", title="Nodes' own models (mean over nodes)"
    )
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(alpha=0.3)


def _personalized_accuracies(rounds: list[dict[str, Any]]) -> list[float]:
    values = (r.get("personalized_accuracy_mean") for r in rounds)
    return [np.nan if value is None else float(value) for value in values]


def _is_leading_digit(value: float, digits: tuple[int, ...]) -> bool:
    """True if `value` is d x 10^k for one of `digits` (which minor log ticks get a label)."""
    if value <= 0:
        return False
    mantissa = value / 10 ** np.floor(np.log10(value))
    return any(abs(mantissa - d) < 1e-6 for d in digits)


def _values(rounds: list[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) if r.get(key) is not None else float("nan") for r in rounds]


def _client_accuracies(rounds: list[dict[str, Any]]) -> list[float]:
    """The clients' own models' mean test accuracy per round (NaN where a round has none, e.g. round 0)."""
    return [
        float(r.get("client_accuracy_mean") if r.get("client_accuracy_mean") is not None else "nan") for r in rounds
    ]


def _cumulative_megabytes(rounds: list[dict[str, Any]]) -> np.ndarray:
    return np.cumsum([(r.get("bytes_up", 0) + r.get("bytes_down", 0)) / MEGABYTE for r in rounds])


def _mean_curve(
    runs: list[list[dict[str, Any]]], extract: Callable[[list[dict[str, Any]]], Sequence[float]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(rounds, mean of `extract` over runs, sample std or None) over the rounds every run has."""
    length = min(len(r) for r in runs)
    rounds = np.array([record["round"] for record in runs[0][:length]])
    values = np.array([list(extract(r))[:length] for r in runs], dtype=float)
    return rounds, values.mean(axis=0), values.std(axis=0, ddof=1) if len(runs) > 1 else None


def _accuracy_floor(curves: dict[str, list[list[dict[str, Any]]]], target: float, key: str = ACCURACY.key) -> float:
    """The y-axis floor: a little under the target and most trained rounds' values (0 at most, as for accuracy)."""
    trained = [
        r[key]
        for runs in curves.values()
        for rounds in runs
        for r in rounds
        if r["round"] >= 1 and r.get(key) is not None
    ]
    low = min(target - 0.1, float(np.percentile(trained, 10))) if trained else target - 0.1
    return max(0.0, low - 0.02) if key == ACCURACY.key else low - 0.02


def is_private(label: str, settings: dict[str, dict[str, Any]]) -> bool:
    """Whether strategy `label`'s runs are differentially private (the centralized baseline never is)."""
    return label != CENTRALIZED and settings.get(label, {}).get("dp", "none") != "none"


def privacy_table(
    rows: Sequence[dict[str, Any]], settings: dict[str, dict[str, Any]], metric: Metric = ACCURACY
) -> str:
    """The metric against privacy: z, epsilon (delta, neighbouring relation) and the metric per strategy."""
    final, best = f"final_{metric.name}", f"best_{metric.name}"
    lines = [
        "| strategy | noise multiplier z | epsilon | delta | neighbours | "
        f"final {metric.label} | best {metric.label} |",
        "|" + "---|" * 7,
    ]
    for row in rows:
        own = settings.get(row["strategy"], {})
        private = is_private(row["strategy"], settings)
        relation = NEIGHBOURING_RELATIONS[own["client-sampling"]] if private else MISSING
        lines.append(
            f"| {row['strategy']} | {own['dp-noise-multiplier'] if private else MISSING} | "
            f"{_number(row['final_epsilon_mean'], '.2f') if private else 'not private'} | "
            f"{own['dp-delta'] if private else MISSING} | {relation} | "
            f"{_pm(row[f'{final}_mean'], row[f'{final}_std'], '.4f')} | "
            f"{_pm(row[f'{best}_mean'], row[f'{best}_std'], '.4f')} |"
        )
    return "\n".join(lines)


def plot_privacy_utility(
    rows: Sequence[dict[str, Any]],
    settings: dict[str, dict[str, Any]],
    path: Path,
    title: str,
    metric: Metric = ACCURACY,
) -> None:
    """The final metric (mean ± sd over seeds) against epsilon, one line per DP mode; non-private runs as lines."""
    final = f"final_{metric.name}"
    figure, axis = plt.subplots(figsize=(7, 5))
    private = [r for r in rows if is_private(r["strategy"], settings) and r["final_epsilon_mean"] is not None]
    modes = list(dict.fromkeys(settings[r["strategy"]]["dp"] for r in private))
    for index, mode in enumerate(modes):
        points = sorted(
            (r for r in private if settings[r["strategy"]]["dp"] == mode), key=lambda r: r["final_epsilon_mean"]
        )
        axis.errorbar(
            [r["final_epsilon_mean"] for r in points],
            [r[f"{final}_mean"] for r in points],
            yerr=[r[f"{final}_std"] or 0.0 for r in points],
            marker="os^"[index % 3],
            capsize=4,
            color=f"C{index}",
            label=f"DP-FedAvg, {mode} clipping",
        )
        for r in points:
            z = settings[r["strategy"]]["dp-noise-multiplier"]
            xy = (r["final_epsilon_mean"], r[f"{final}_mean"])
            axis.annotate(f"z={z:g}", xy, textcoords="offset points", xytext=(6, -12 - 12 * index))
    plain = [r for r in rows if not is_private(r["strategy"], settings) and r[f"{final}_mean"] is not None]
    for index, r in enumerate(plain, start=len(modes)):
        color, spread = f"C{index}", r[f"{final}_std"] or 0.0
        axis.axhline(r[f"{final}_mean"], color=color, linestyle="--", label=f"{r['strategy']} (not private)")
        axis.axhspan(r[f"{final}_mean"] - spread, r[f"{final}_mean"] + spread, color=color, alpha=0.12)
    delta = next((settings[r["strategy"]]["dp-delta"] for r in private), None)
    axis.set(
        xscale="log",
        xlabel=f"epsilon at delta = {delta:g}" if delta else "epsilon",
        ylabel=f"final central {metric.label}",
    )
    plain_numbers = FuncFormatter(lambda value, _: f"{value:g}")
    axis.xaxis.set_major_formatter(plain_numbers)
    axis.xaxis.set_minor_formatter(
        FuncFormatter(lambda value, _: f"{value:g}" if _is_leading_digit(value, (2, 5)) else "")
    )
    axis.grid(alpha=0.3)
    axis.legend(loc="best", frameon=False)
    axis.set_title(title, fontsize=10)
    figure.tight_layout()
    atomic_write(path, lambda file: figure.savefig(file, format="png", dpi=100))
    plt.close(figure)


def write_report(
    path: Path,
    command: str,
    rows: Sequence[dict[str, Any]],
    results: Sequence[RunResult],
    settings: dict[str, dict[str, Any]],
    checks: Sequence[str],
    metric: Metric = ACCURACY,
) -> None:
    """Write `report.md`: the summary table, the picture, the settings that produced them, every run."""
    target = rows[0][f"target_{metric.name}"] if rows else 0.0
    seeds = sorted({r.seed for r in results})
    units = " (RMSE and MAE in the target's units)" if metric.extras else ""
    sections = [
        "# Strategy comparison",
        f"`{command}`",
        "## Summary",
        markdown_table(rows, metric),
        (
            f"Mean ± sample standard deviation over the completed runs of seeds {', '.join(map(str, seeds))} "
            f"({counted(len(seeds), 'seed')}). "
            f"The {metric.label} is central {metric.label} on the held-out test set{units}: the global model's, "
            "or for a strategy without one (fd) the mean of the client models'. Client models: the mean over "
            "clients of their own models' test accuracy after the last round (and at the best round), where "
            f"clients keep their own models (fd, fedmd/feddistill). Rounds to {target:.2f}: the first round "
            f"whose {metric.label} reaches the target (as on the FedAvg paper's best-so-far curve), averaged over the "
            "runs that reached it (how many, in brackets); MB to the target and in total count training "
            f"traffic only (model, gradient or logit records sent and received, 1 MB = 10^6 bytes). "
            "Nodes' own models: each evaluated node's own model on its own validation split in the last round "
            "(FedBN's and Ditto's personal models, the global model for the other strategies): the mean over "
            "nodes, averaged over seeds (± std over seeds), and the lowest and highest node (averaged over seeds); "
            "a dash where the runs do not evaluate on nodes (fraction-evaluate = 0). "
            f"The {CENTRALIZED} row is the baseline trained with DistributedDataParallel on the pooled data; "
            "its rounds are epochs and it sends nothing over a federation."
        ),
        f"![{metric.label} per round and per megabyte]({CURVES_FILE})",
        *_privacy_section(rows, settings, metric),
        *_attack_section(settings),
        "## Settings",
        _settings_text(settings),
        "## Identical start",
        "\n".join(f"- {line}" for line in checks) or "- no run has finished yet",
        "## Runs",
        runs_table(results, target, metric),
    ]
    atomic_write_text(path, "\n\n".join(sections) + "\n")


def counted(number: int, noun: str) -> str:
    """`number` `noun`s, in the singular for one: "1 seed", "3 seeds"."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _privacy_section(
    rows: Sequence[dict[str, Any]], settings: dict[str, dict[str, Any]], metric: Metric = ACCURACY
) -> list[str]:
    """The privacy table and figure, when some strategy of the comparison is differentially private."""
    if not any(is_private(label, settings) for label in settings):
        return []
    return [
        "## Privacy",
        privacy_table(rows, settings, metric),
        (
            "Epsilon is the cumulative epsilon after the last round (RDP accountant, dp-accounting), the same for "
            "every seed: it depends on the noise, the sampling and the number of rounds, not on the data."
        ),
        f"![final {metric.label} against epsilon]({PRIVACY_FILE})",
    ]


def _attack_section(settings: dict[str, dict[str, Any]]) -> list[str]:
    """Which runs had attacking nodes (an experiment's attack must not hide among the settings)."""
    attacked = {label: s for label, s in settings.items() if s.get("attack", "none") != "none"}
    if not attacked:
        return []
    lines = [
        f"- {label}: `{s['attack']}` by `{s['attackers']}` (attack-scale {s['attack-scale']}; -1: its default)"
        for label, s in attacked.items()
    ]
    return ["## Attack", "Nodes attacked in these runs ([robustness.md](docs/robustness.md)):", "\n".join(lines)]


def _settings_text(settings: dict[str, dict[str, Any]]) -> str:
    """The run config every strategy shares, then a table of the keys that differ between them."""
    labels = list(settings)
    keys = list(settings[labels[0]])
    shared = [key for key in keys if len({repr(settings[label].get(key)) for label in labels}) == 1]
    differing = [key for key in keys if key not in shared]
    lines = ["Shared by every run: " + ", ".join(f"`{key}={settings[labels[0]][key]}`" for key in shared) + "."]
    if differing:
        lines += ["", "| run | " + " | ".join(differing) + " |", "|" + "---|" * (len(differing) + 1)]
        lines += [
            f"| {label} | " + " | ".join(str(settings[label].get(key, "")) for key in differing) + " |"
            for label in labels
        ]
    return "\n".join(lines)
