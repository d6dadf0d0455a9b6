"""The run's picture: the task's main metric and the loss per round, central and federated.

Classification: accuracy and cross-entropy. Regression: R² and the MSE of the
standardised target (the training loss, comparable between central, federated and
training).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

from fedapp.atomic import atomic_write
from fedapp.choices import CLASSIFICATION, REGRESSION
from fedapp.tasks import LABELS, PRIMARY

matplotlib.use("Agg")
import matplotlib.pyplot as plt

LOSS_LABEL = {CLASSIFICATION: "cross-entropy", REGRESSION: "MSE (standardised target)"}


def _series(rounds: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(round numbers, values) of `key` over the rounds that have it."""
    points = [(r["round"], r[key]) for r in rounds if r.get(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def plot_run(rounds: list[dict[str, Any]], path: Path, title: str, task: str = CLASSIFICATION) -> None:
    """Save a two-panel figure (the task's metric, loss vs round) of a run's metrics to `path`."""
    metric = PRIMARY[task]
    label = LABELS[metric]
    figure, (metric_axis, loss_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, legend in (
        (f"central_{metric}", "central (held-out test set)"),
        (f"federated_{metric}", "federated (node validation)"),
        (f"personalized_{metric}_mean", "nodes' own models (node validation, mean)"),
    ):
        xs, ys = _series(rounds, key)
        if xs:
            metric_axis.plot(xs, ys, marker="o", label=legend)
    for key, legend in (
        ("central_loss", "central test loss"),
        ("train_loss", "client train loss"),
        ("federated_loss", "federated validation loss"),
    ):
        xs, ys = _series(rounds, key)
        if xs:
            loss_axis.plot(xs, ys, marker="o", label=legend)
    metric_axis.set(xlabel="round", ylabel=label, title=label[0].upper() + label[1:])
    loss_axis.set(xlabel="round", ylabel=LOSS_LABEL[task], title="Loss")
    for axis in (metric_axis, loss_axis):
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    atomic_write(path, lambda file: figure.savefig(file, format="png", dpi=110))
    plt.close(figure)
