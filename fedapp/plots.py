"""The run's picture: accuracy and loss per round, central and federated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

from fedapp.atomic import atomic_write

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _series(rounds: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(round numbers, values) of `key` over the rounds that have it."""
    points = [(r["round"], r[key]) for r in rounds if r.get(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def plot_run(rounds: list[dict[str, Any]], path: Path, title: str) -> None:
    """Save a two-panel figure (accuracy, loss vs round) of a run's metrics to `path`."""
    figure, (accuracy_axis, loss_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, label in (
        ("central_accuracy", "central (held-out test set)"),
        ("federated_accuracy", "federated (node validation)"),
        ("personalized_accuracy_mean", "nodes' own models (node validation, mean)"),
    ):
        xs, ys = _series(rounds, key)
        if xs:
            accuracy_axis.plot(xs, ys, marker="o", label=label)
    for key, label in (
        ("central_loss", "central test loss"),
        ("train_loss", "client train loss"),
        ("federated_loss", "federated validation loss"),
    ):
        xs, ys = _series(rounds, key)
        if xs:
            loss_axis.plot(xs, ys, marker="o", label=label)
    accuracy_axis.set(xlabel="round", ylabel="accuracy", title="Accuracy")
    loss_axis.set(xlabel="round", ylabel="cross-entropy", title="Loss")
    for axis in (accuracy_axis, loss_axis):
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    atomic_write(path, lambda file: figure.savefig(file, format="png", dpi=110))
    plt.close(figure)
