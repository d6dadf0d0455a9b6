"""Local computation on a node (and on the server): SGD training, evaluation, gradients, soft labels.

No Flower imports: these functions take a model and tensors and return numbers or
tensors, so they are the same in a ClientApp, in the server's central evaluation, in
the centralized baseline and in unit tests. The loss and the metrics follow the
split's task (`tasks.py`): cross-entropy and accuracy for classes, MSE and RMSE, MAE,
R² for regression targets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from fedapp import tasks
from fedapp.data import LabelledSplit
from strategies.losses import distillation_loss, proximal_term, soft_labels

EVAL_BATCH = 1000
CPU = torch.device("cpu")

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
"""A training-batch augmentation: (batch, generator) -> augmented batch (`data.images.Augmentation`)."""


@dataclass(frozen=True)
class TrainResult:
    """What a round of local training did: mean loss over its steps, steps, examples."""

    loss: float
    steps: int
    examples: int


def _batches(num_samples: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Yield index batches of one epoch in a random order drawn from `generator`."""
    order = torch.randperm(num_samples, generator=generator)
    yield from order.split(batch_size)


def train_sgd(  # noqa: PLR0913 (keyword-only training settings)
    model: nn.Module,
    data: LabelledSplit,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    generator: torch.Generator,
    proximal_mu: float = 0.0,
    device: torch.device = CPU,
    augment: Augment | None = None,
) -> TrainResult:
    """Train `model` in place with minibatch SGD on `data` for `epochs` epochs.

    With `proximal_mu` > 0 every step minimises loss + (mu / 2) ||w - w_start||^2, where
    w_start are the weights the model had on entry (FedProx's local objective). With
    `augment`, every batch is augmented first (its draws come from `generator` too).
    """
    model.to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
    anchors = [p.detach().clone() for p in model.parameters()] if proximal_mu > 0 else []
    features, labels = data.features.to(device), data.labels.to(device)
    total_loss, steps = 0.0, 0
    for _ in range(epochs):
        for indices in _batches(len(labels), batch_size, generator):
            batch = indices.to(device)
            optimizer.zero_grad(set_to_none=True)
            inputs = features[batch] if augment is None else augment(features[batch], generator)
            loss = tasks.loss(model(inputs), labels[batch])
            if proximal_mu > 0:
                loss = loss + proximal_mu / 2 * proximal_term(model.parameters(), anchors)
            loss.backward()
            optimizer.step()
            total_loss += loss.item()
            steps += 1
    return TrainResult(loss=total_loss / max(steps, 1), steps=steps, examples=len(labels))


@torch.no_grad()
def evaluate(model: nn.Module, data: LabelledSplit, device: torch.device = CPU) -> dict[str, float]:
    """Means of `model` on `data` that pool over nodes by example weighting (`tasks.evaluation_sums`).

    Classification: `loss` (cross-entropy) and `accuracy`; regression: `loss` (MSE of
    standardised targets), `mse`, `mae`, `target_mean`, `target_square_mean` in the
    target's units. `tasks.summary` turns them into the reported metrics.
    """
    model.to(device).eval()
    sums: dict[str, float] = {}
    for start in range(0, len(data), EVAL_BATCH):
        features = data.features[start : start + EVAL_BATCH].to(device)
        labels = data.labels[start : start + EVAL_BATCH].to(device)
        batch = tasks.evaluation_sums(model(features), labels, data.target_offset, data.target_scale)
        for key, value in batch.items():
            sums[key] = sums.get(key, 0.0) + value
    if not sums:  # no samples: zero sums with the task's keys, as an empty evaluation reports
        sums = dict.fromkeys(tasks.RAW[tasks.task_of(data.labels)], 0.0)
    return tasks.finish_sums(sums, len(data))


def full_batch_gradient(
    model: nn.Module, data: LabelledSplit, device: torch.device = CPU
) -> tuple[dict[str, torch.Tensor], float]:
    """Return (gradient of the mean loss over all of `data` per parameter name, that loss).

    The model is not changed. Chunks keep memory bounded; the result is the exact
    full-batch gradient (FedSGD's client computation).
    """
    model.to(device).train()
    model.zero_grad(set_to_none=True)
    total = 0.0
    for start in range(0, len(data), EVAL_BATCH):
        features = data.features[start : start + EVAL_BATCH].to(device)
        labels = data.labels[start : start + EVAL_BATCH].to(device)
        loss = tasks.loss(model(features), labels, reduction="sum") / len(data)
        loss.backward()
        total += loss.item()
    gradients = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return gradients, total


@torch.no_grad()
def predict_soft_labels(
    model: nn.Module, features: torch.Tensor, temperature: float, device: torch.device = CPU
) -> torch.Tensor:
    """Class probabilities of `model` on `features`, softened by `temperature` (on CPU)."""
    model.to(device).eval()
    chunks = [
        soft_labels(model(features[start : start + EVAL_BATCH].to(device)), temperature).cpu()
        for start in range(0, len(features), EVAL_BATCH)
    ]
    return torch.cat(chunks)


def fit_soft_labels(  # noqa: PLR0913 (keyword-only training settings)
    model: nn.Module,
    features: torch.Tensor,
    targets: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    temperature: float,
    generator: torch.Generator,
    device: torch.device = CPU,
) -> float:
    """Distil `targets` (class probabilities on `features`) into `model` with Adam; return the mean loss."""
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    features, targets = features.to(device), targets.to(device)
    total_loss, steps = 0.0, 0
    for _ in range(epochs):
        for indices in _batches(len(targets), batch_size, generator):
            batch = indices.to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = distillation_loss(model(features[batch]), targets[batch], temperature)
            loss.backward()
            optimizer.step()
            total_loss += loss.item()
            steps += 1
    return total_loss / max(steps, 1)
