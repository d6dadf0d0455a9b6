"""Seconds per round against clients per round, from one or more `python -m sim bench` JSON reports.

One panel per model; the simulation and the plain loop of each report are drawn side
by side (solid and dashed), so a before/after pair of reports shows four lines per model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

from sim.bench import steady_state

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def cohort_series(report: dict[str, Any]) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Per model and side ('simulation', 'plain_loop'): (clients a round, steady seconds per round), by clients."""
    runs = {run["label"]: run for run in report["runs"]}
    series: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for model, cohorts in report.get("cohorts", {}).items():
        for clients, labels in sorted(cohorts.items(), key=lambda item: int(item[0])):
            for side, label in labels.items():
                point = (int(clients), steady_state(runs[label]["round_seconds"]))
                series.setdefault(model, {}).setdefault(side, []).append(point)
    return series


def plot_cohorts(reports: dict[str, dict[str, Any]], path: Path) -> Path:
    """Draw every report's cohorts into `path` (PNG); the keys of `reports` label the lines ('' for one report)."""
    models = sorted({model for report in reports.values() for model in report.get("cohorts", {})})
    figure, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4.2), squeeze=False)
    for axis, model in zip(axes[0], models, strict=True):
        for (name, report), colour in zip(reports.items(), ("tab:red", "tab:blue", "tab:green"), strict=False):
            for side, points in cohort_series(report).get(model, {}).items():
                clients, seconds = zip(*points, strict=True)
                label = f"{name + ': ' if name else ''}{side.replace('_', ' ')}"
                style = "-o" if side == "simulation" else "--s"
                axis.plot(clients, seconds, style, color=colour, label=label)
        axis.set_title(f"{model}: E=1, B=10, all nodes sampled")
        axis.set_xlabel("clients per round")
        axis.set_ylabel("steady-state seconds per round")
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_command(out: Path, labelled: list[str]) -> int:
    """`python -m sim bench-plot OUT.png LABEL=REPORT.json ...`: draw the reports' cohorts; returns the exit code."""
    reports = {}
    for item in labelled:
        label, sep, file = item.rpartition("=")
        if not sep:
            label, file = "", item
        reports[label] = json.loads(Path(file).read_text())
    print(f"wrote {plot_cohorts(reports, out)}")
    return 0
