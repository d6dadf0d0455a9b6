"""A comparison's outputs: `summary.csv`, `report.md` and `curves.png`.

The table is the same in the CSV (one numeric column per quantity, for scripts) and in
the report (mean ± standard deviation, for people). The picture has central accuracy
against rounds and against cumulative training traffic, one line per strategy (the
mean over its completed seeds, with a ±1 standard deviation band), the centralized
baseline's best accuracy as a horizontal line, and the target as a dotted line.

When some runs are differentially private, the report adds a privacy table (noise
multiplier, epsilon at delta and for which neighbours, accuracy) and `privacy.png`:
final accuracy against epsilon, one point per noise multiplier (mean ± standard
deviation over seeds), the non-private runs and the centralized baseline as lines.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

from fedapp.atomic import atomic_write, atomic_write_text
from sim.summary import COLUMNS, MEGABYTE, RunResult, final_accuracy, rounds_to_target
from strategies.accounting import NEIGHBOURING_RELATIONS

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, MaxNLocator

SUMMARY_FILE = "summary.csv"
REPORT_FILE = "report.md"
CURVES_FILE = "curves.png"
PRIVACY_FILE = "privacy.png"
CENTRALIZED = "centralized"


def write_summary_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Write the summary rows with the columns `COLUMNS` (empty cells for missing values)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row[key] is None else _csv_value(row[key]) for key in COLUMNS})
    atomic_write_text(path, buffer.getvalue())


def _csv_value(value: Any) -> Any:
    return round(value, 6) if isinstance(value, float) else value


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The summary as a Markdown table: mean ± std over seeds, megabytes, seconds."""
    target = rows[0]["target_accuracy"] if rows else 0.0
    header = (
        f"| strategy | runs (failed) | final accuracy | best accuracy | rounds to {target:.2f} | "
        f"MB up to {target:.2f} | MB down to {target:.2f} | total MB up + down | wall time (s) |"
    )
    lines = [header, "|" + "---|" * 9]
    for row in rows:
        reached = f"{row['reached_target']}/{row['runs'] - row['failed']}"
        rounds = (
            f"{_pm(row['rounds_to_target_mean'], row['rounds_to_target_std'], '.1f')} ({reached})"
            if row["reached_target"]
            else f"not reached ({reached})"
        )
        lines.append(
            f"| {row['strategy']} | {row['runs']} ({row['failed']}) | "
            f"{_pm(row['final_accuracy_mean'], row['final_accuracy_std'], '.4f')} | "
            f"{_pm(row['best_accuracy_mean'], row['best_accuracy_std'], '.4f')} | {rounds} | "
            f"{_number(row['mb_up_to_target'], '.1f')} | {_number(row['mb_down_to_target'], '.1f')} | "
            f"{_number(row['total_mb'], '.1f')} | {_number(row['wall_seconds_mean'], '.0f')} |"
        )
    return "\n".join(lines)


def _pm(mean: float | None, std: float | None, spec: str) -> str:
    """'mean ± std', 'mean' (one run) or 'failed' (no completed run)."""
    if mean is None:
        return "failed"
    return f"{mean:{spec}} ± {std:{spec}}" if std is not None else f"{mean:{spec}}"


MISSING = "\u2013"  # an en dash marks a figure a run does not have


def _number(value: float | None, spec: str) -> str:
    return MISSING if value is None else f"{value:{spec}}"


def runs_table(results: Sequence[RunResult], target: float) -> str:
    """Every run on its own line: status, final accuracy, rounds to target, time, folder."""
    lines = [
        f"| strategy | seed | status | final accuracy | rounds to {target:.2f} | wall time (s) | folder |",
        "|" + "---|" * 7,
    ]
    for r in results:
        final = f"{final_accuracy(r.rounds):.4f}" if r.rounds else MISSING
        reached = rounds_to_target(r.rounds, target) if r.rounds else None
        lines.append(
            f"| {r.label} | {r.seed} | {r.status} | {final} | {MISSING if reached is None else reached} | "
            f"{r.seconds:.0f} | {r.folder} |"
        )
    return "\n".join(lines)


def plot_curves(
    curves: dict[str, list[list[dict[str, Any]]]], baseline: float | None, target: float, path: Path, title: str
) -> None:
    """Draw accuracy vs round and vs cumulative MB for each strategy's runs (`curves[label]`)."""
    figure, (by_round, by_traffic) = plt.subplots(1, 2, figsize=(13, 5))
    for index, (label, runs) in enumerate(curves.items()):
        if not runs:
            continue
        style = {
            "color": f"C{index % 10}",
            "label": label,
            "marker": "o" if len(runs[0]) <= 30 else None,
            "markersize": 3,
        }
        rounds, accuracy, spread = _mean_curve(runs, _accuracies)
        _, traffic, _ = _mean_curve(runs, _cumulative_megabytes)
        by_round.plot(rounds, accuracy, **style)
        if spread is not None:
            by_round.fill_between(rounds, accuracy - spread, accuracy + spread, color=style["color"], alpha=0.15)
        trained = rounds >= 1
        by_traffic.plot(traffic[trained], accuracy[trained], **style)
    for axis in (by_round, by_traffic):
        if baseline is not None:
            axis.axhline(
                baseline, color="black", linestyle="--", linewidth=1.2, label=f"centralized (DDP), best {baseline:.3f}"
            )
        axis.axhline(target, color="grey", linestyle=":", linewidth=1, label=f"target {target:.2f}")
        axis.set_ylabel("central accuracy (held-out test set)")
        axis.grid(alpha=0.3)
        axis.set_ylim(_accuracy_floor(curves, target), 1.0)
    by_round.set(xlabel="round", title="Accuracy per round")
    by_round.xaxis.set_major_locator(MaxNLocator(integer=True))
    by_traffic.set(
        xlabel="cumulative training traffic, up + down (MB, log scale)", title="Accuracy per megabyte", xscale="log"
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


def _is_leading_digit(value: float, digits: tuple[int, ...]) -> bool:
    """True if `value` is d x 10^k for one of `digits` (which minor log ticks get a label)."""
    if value <= 0:
        return False
    mantissa = value / 10 ** np.floor(np.log10(value))
    return any(abs(mantissa - d) < 1e-6 for d in digits)


def _accuracies(rounds: list[dict[str, Any]]) -> list[float]:
    return [float(r["central_accuracy"]) for r in rounds]


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


def _accuracy_floor(curves: dict[str, list[list[dict[str, Any]]]], target: float) -> float:
    """The y-axis floor: a little under the target and most trained rounds' accuracy."""
    trained = [r["central_accuracy"] for runs in curves.values() for rounds in runs for r in rounds if r["round"] >= 1]
    low = min(target - 0.1, float(np.percentile(trained, 10))) if trained else target - 0.1
    return max(0.0, low - 0.02)


def is_private(label: str, settings: dict[str, dict[str, Any]]) -> bool:
    """Whether strategy `label`'s runs are differentially private (the centralized baseline never is)."""
    return label != CENTRALIZED and settings.get(label, {}).get("dp", "none") != "none"


def privacy_table(rows: Sequence[dict[str, Any]], settings: dict[str, dict[str, Any]]) -> str:
    """Accuracy against privacy: z, epsilon (delta, neighbouring relation) and accuracy per strategy."""
    lines = [
        "| strategy | noise multiplier z | epsilon | delta | neighbours | final accuracy | best accuracy |",
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
            f"{_pm(row['final_accuracy_mean'], row['final_accuracy_std'], '.4f')} | "
            f"{_pm(row['best_accuracy_mean'], row['best_accuracy_std'], '.4f')} |"
        )
    return "\n".join(lines)


def plot_privacy_utility(
    rows: Sequence[dict[str, Any]], settings: dict[str, dict[str, Any]], path: Path, title: str
) -> None:
    """Final accuracy (mean ± sd over seeds) against epsilon, one line per DP mode; non-private runs as lines."""
    figure, axis = plt.subplots(figsize=(7, 5))
    private = [r for r in rows if is_private(r["strategy"], settings) and r["final_epsilon_mean"] is not None]
    modes = list(dict.fromkeys(settings[r["strategy"]]["dp"] for r in private))
    for index, mode in enumerate(modes):
        points = sorted(
            (r for r in private if settings[r["strategy"]]["dp"] == mode), key=lambda r: r["final_epsilon_mean"]
        )
        axis.errorbar(
            [r["final_epsilon_mean"] for r in points],
            [r["final_accuracy_mean"] for r in points],
            yerr=[r["final_accuracy_std"] or 0.0 for r in points],
            marker="os^"[index % 3],
            capsize=4,
            color=f"C{index}",
            label=f"DP-FedAvg, {mode} clipping",
        )
        for r in points:
            z = settings[r["strategy"]]["dp-noise-multiplier"]
            xy = (r["final_epsilon_mean"], r["final_accuracy_mean"])
            axis.annotate(f"z={z:g}", xy, textcoords="offset points", xytext=(6, -12 - 12 * index))
    plain = [r for r in rows if not is_private(r["strategy"], settings) and r["final_accuracy_mean"] is not None]
    for index, r in enumerate(plain, start=len(modes)):
        color, spread = f"C{index}", r["final_accuracy_std"] or 0.0
        axis.axhline(r["final_accuracy_mean"], color=color, linestyle="--", label=f"{r['strategy']} (not private)")
        axis.axhspan(r["final_accuracy_mean"] - spread, r["final_accuracy_mean"] + spread, color=color, alpha=0.12)
    delta = next((settings[r["strategy"]]["dp-delta"] for r in private), None)
    axis.set(
        xscale="log", xlabel=f"epsilon at delta = {delta:g}" if delta else "epsilon", ylabel="final central accuracy"
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
) -> None:
    """Write `report.md`: the summary table, the picture, the settings that produced them, every run."""
    target = rows[0]["target_accuracy"] if rows else 0.0
    seeds = sorted({r.seed for r in results})
    sections = [
        "# Strategy comparison",
        f"`{command}`",
        "## Summary",
        markdown_table(rows),
        (
            f"Mean ± sample standard deviation over the completed runs of seeds {', '.join(map(str, seeds))}. "
            f"Accuracy is central accuracy on the held-out test set. Rounds to {target:.2f}: the first round "
            "whose accuracy reaches the target (as on the FedAvg paper's best-so-far curve), averaged over the "
            "runs that reached it (how many, in brackets); MB to the target and in total count training "
            f"traffic only (model, gradient or soft-label records sent and received, 1 MB = 10^6 bytes). "
            f"The {CENTRALIZED} row is the baseline trained with DistributedDataParallel on the pooled data; "
            "its rounds are epochs and it sends nothing over a federation."
        ),
        f"![accuracy per round and per megabyte]({CURVES_FILE})",
        *_privacy_section(rows, settings),
        "## Settings",
        _settings_text(settings),
        "## Identical start",
        "\n".join(f"- {line}" for line in checks) or "- no run has finished yet",
        "## Runs",
        runs_table(results, target),
    ]
    atomic_write_text(path, "\n\n".join(sections) + "\n")


def _privacy_section(rows: Sequence[dict[str, Any]], settings: dict[str, dict[str, Any]]) -> list[str]:
    """The privacy table and figure, when some strategy of the comparison is differentially private."""
    if not any(is_private(label, settings) for label in settings):
        return []
    return [
        "## Privacy",
        privacy_table(rows, settings),
        (
            "Epsilon is the cumulative epsilon after the last round (RDP accountant, dp-accounting), the same for "
            "every seed: it depends on the noise, the sampling and the number of rounds, not on the data."
        ),
        f"![final accuracy against epsilon]({PRIVACY_FILE})",
    ]


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
