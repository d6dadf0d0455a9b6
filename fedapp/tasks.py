"""What a run learns: classification (cross-entropy, accuracy) or regression (MSE, RMSE, MAE, R²).

A split says which task it holds by its labels' dtype: int64 class indices for
classification, float32 targets for regression (`fedapp.data.LabelledSplit`). So the
loss and the metrics follow the data, in a ClientApp, the server's evaluation and the
centralized baseline alike.

Regression targets are standardised with the training data's mean and standard
deviation for training (the loss, `loss`, is the MSE of standardised targets);
RMSE and MAE are reported in the target's own units, R² is unitless.

Evaluation returns sums that pool exactly: a node's `mse`, `mae`, `target_mean` and
`target_square_mean` are means over its samples, so their example-weighted average
over nodes (what Flower's and fedapp's strategies compute for evaluation replies) is
the mean over all their samples, and `summary` turns that into the RMSE, MAE and R²
of the union of the nodes' data (not an average of per-node R²s).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from fedapp.choices import CLASSIFICATION, REGRESSION

RAW = {CLASSIFICATION: ("loss", "accuracy"), REGRESSION: ("loss", "mse", "mae", "target_mean", "target_square_mean")}
"""What `evaluation_sums` returns per task (made means by `finish_sums`, so they pool by example weighting)."""

METRICS = {CLASSIFICATION: ("accuracy", "loss"), REGRESSION: ("rmse", "mae", "r2", "loss")}
"""The metrics a task reports, in the order they appear in a round's record (`central_<name>`, `federated_<name>`)."""

PRIMARY = {CLASSIFICATION: "accuracy", REGRESSION: "r2"}
"""The metric targets and curves use: higher is better for both; R² is scale-free, like accuracy."""

LABELS = {"accuracy": "accuracy", "loss": "loss", "rmse": "RMSE", "mae": "MAE", "r2": "R²"}


def task_of(labels: torch.Tensor) -> str:
    """The task a split's labels belong to: integer classes or real-valued targets."""
    return REGRESSION if labels.is_floating_point() else CLASSIFICATION


def loss(outputs: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of logits against class indices, or MSE of outputs against targets."""
    if labels.is_floating_point():
        return F.mse_loss(outputs.reshape(labels.shape), labels, reduction=reduction)
    return F.cross_entropy(outputs, labels, reduction=reduction)


def evaluation_sums(
    outputs: torch.Tensor, labels: torch.Tensor, target_offset: float, target_scale: float
) -> dict[str, float]:
    """Sums over one batch from which `finish_sums` makes the means `summary` needs.

    Classification: summed loss and correct predictions. Regression: summed loss
    (standardised MSE), squared and absolute errors and targets in the target's units
    (standardised values times `target_scale` plus `target_offset`).
    """
    total = loss(outputs, labels, reduction="sum").item()
    if not labels.is_floating_point():
        return {"loss": total, "accuracy": (outputs.argmax(dim=1) == labels).sum().item()}
    predictions = outputs.reshape(labels.shape).double() * target_scale + target_offset
    targets = labels.double() * target_scale + target_offset
    errors = predictions - targets
    return {
        "loss": total,
        "mse": errors.square().sum().item(),
        "mae": errors.abs().sum().item(),
        "target_mean": targets.sum().item(),
        "target_square_mean": targets.square().sum().item(),
    }


def finish_sums(sums: dict[str, float], count: int) -> dict[str, float]:
    """Means over `count` samples of what `evaluation_sums` summed."""
    return {key: value / max(count, 1) for key, value in sums.items()}


def summary(task: str, means: dict[str, float]) -> dict[str, float | None]:
    """The task's reported metrics (`METRICS[task]`) from pooled means.

    For regression: RMSE = sqrt(mean squared error), MAE, and
    R² = 1 - MSE / Var(target) with Var(target) = E[y²] - E[y]² over the pooled samples
    (None when the targets do not vary).
    """
    if task == CLASSIFICATION:
        return {"accuracy": means["accuracy"], "loss": means["loss"]}
    variance = means["target_square_mean"] - means["target_mean"] ** 2
    r2 = 1.0 - means["mse"] / variance if variance > 1e-12 * max(1.0, means["target_square_mean"]) else None
    return {"rmse": math.sqrt(max(means["mse"], 0.0)), "mae": means["mae"], "r2": r2, "loss": means["loss"]}


def pooled_summary(task: str, means: dict[str, float] | None) -> dict[str, float | None]:
    """`summary` of means pooled over nodes, or every metric None when no node's means came back."""
    if means is None or not set(RAW[task]) <= set(means):
        return dict.fromkeys(METRICS[task])
    return summary(task, means)


def headline(prefix: str, task: str, record: dict[str, Any]) -> str:
    """The task's metrics but the loss, e.g. `central accuracy: 0.9690` or `central RMSE: 55.1, MAE: 44.2, R²: 0.45`."""
    values = []
    for name in METRICS[task][:-1]:
        value = record.get(f"{prefix}_{name}")
        values.append(f"{LABELS[name]}: {value:.4f}" if value is not None else f"{LABELS[name]}: -")
    return f"{prefix} " + ", ".join(values)


def describe(prefix: str, task: str, record: dict[str, Any]) -> list[str]:
    """The task's `<prefix>_<metric>` values of a round's record as text (`central accuracy 0.9690`, `loss 0.1`)."""
    parts = []
    for index, name in enumerate(METRICS[task]):
        value = record.get(f"{prefix}_{name}")
        label = f"{prefix} {LABELS[name]}" if index == 0 else LABELS[name]
        parts.append(f"{label} {value:.4f}" if value is not None else f"{label} -")
    return parts
