"""Local computation on a node (and on the server): SGD training, evaluation, gradients, logits.

No Flower imports: these functions take a model and tensors and return numbers or
tensors, so they are the same in a ClientApp, in the server's central evaluation, in
the centralized baseline and in unit tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fedapp.data import LabelledSplit
from strategies.losses import logit_matching_loss, proximal_term

ExtraLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""A term added to a training step's loss, from the batch's logits and labels (FD's regulariser)."""
LogitObserver = Callable[[torch.Tensor, torch.Tensor], None]
"""Sees each training step's logits (detached) and labels (FD's per-label averages)."""

EVAL_BATCH = 1000
CPU = torch.device("cpu")


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


def batch_schedule(num_samples: int, batch_size: int, steps: int, generator: torch.Generator) -> list[torch.Tensor]:
    """`steps` index batches over epochs in fresh random orders (a shuffled loader, cycled until `steps`)."""
    schedule: list[torch.Tensor] = []
    while len(schedule) < steps:
        schedule += list(_batches(num_samples, batch_size, generator))
    return schedule[:steps]


class LabelLogitSums:
    """Sums of the logits a model produced per label, and the samples per label (FD's upload).

    Feed it every training step's logits (`observe`); `sums` and `counts` then give
    the per-label averages of the round's forward passes (`strategies.label_logits.label_means`).
    """

    def __init__(self, num_classes: int) -> None:
        self.sums = torch.zeros(num_classes, num_classes, dtype=torch.float64)
        self.counts = torch.zeros(num_classes, dtype=torch.float64)

    def observe(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Add a batch's logits to the rows of their labels."""
        labels = labels.cpu()
        self.sums.index_add_(0, labels, logits.detach().cpu().to(torch.float64))
        self.counts += torch.bincount(labels, minlength=len(self.counts)).to(torch.float64)

    def numpy(self) -> tuple[np.ndarray, np.ndarray]:
        """(sums, counts) as NumPy arrays."""
        return self.sums.numpy(), self.counts.numpy()


def train_sgd(  # noqa: PLR0913 (keyword-only training settings)
    model: nn.Module,
    data: LabelledSplit,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    generator: torch.Generator,
    proximal_mu: float = 0.0,
    extra_loss: ExtraLoss | None = None,
    observe: LogitObserver | None = None,
    device: torch.device = CPU,
) -> TrainResult:
    """Train `model` in place with minibatch SGD on `data` for `epochs` epochs.

    With `proximal_mu` > 0 every step minimises loss + (mu / 2) ||w - w_start||^2, where
    w_start are the weights the model had on entry (FedProx's local objective).
    `extra_loss` adds a term computed from the batch's logits and labels (FD's
    regulariser); `observe` is shown every batch's logits and labels (FD's averages).
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
            logits = model(features[batch])
            loss = F.cross_entropy(logits, labels[batch])
            if extra_loss is not None:
                loss = loss + extra_loss(logits, labels[batch])
            if observe is not None:
                observe(logits.detach(), labels[batch])
            if proximal_mu > 0:
                loss = loss + proximal_mu / 2 * proximal_term(model.parameters(), anchors)
            loss.backward()
            optimizer.step()
            total_loss += loss.item()
            steps += 1
    return TrainResult(loss=total_loss / max(steps, 1), steps=steps, examples=len(labels))


@torch.no_grad()
def evaluate(model: nn.Module, data: LabelledSplit, device: torch.device = CPU) -> tuple[float, float]:
    """Return (mean cross-entropy, accuracy) of `model` on `data`."""
    model.to(device).eval()
    loss_sum, correct = 0.0, 0
    for start in range(0, len(data), EVAL_BATCH):
        features = data.features[start : start + EVAL_BATCH].to(device)
        labels = data.labels[start : start + EVAL_BATCH].to(device)
        logits = model(features)
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
        correct += (logits.argmax(dim=1) == labels).sum().item()
    count = max(len(data), 1)
    return loss_sum / count, correct / count


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
        loss = F.cross_entropy(model(features), labels, reduction="sum") / len(data)
        loss.backward()
        total += loss.item()
    gradients = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return gradients, total


@torch.no_grad()
def predict_logits(model: nn.Module, features: torch.Tensor, device: torch.device = CPU) -> torch.Tensor:
    """The logits of `model` on `features` (on CPU)."""
    model.to(device).eval()
    chunks = [
        model(features[start : start + EVAL_BATCH].to(device)).cpu() for start in range(0, len(features), EVAL_BATCH)
    ]
    return torch.cat(chunks) if chunks else torch.zeros(0)


def fit_logits(
    model: nn.Module,
    features: torch.Tensor,
    targets: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    generator: torch.Generator,
    device: torch.device = CPU,
) -> float:
    """FedMD's digest: fit `model`'s logits to `targets` on `features` with Adam and the MAE; return the mean loss."""
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    features, targets = features.to(device), targets.to(device)
    total_loss, steps = 0.0, 0
    for _ in range(epochs):
        for indices in _batches(len(targets), batch_size, generator):
            batch = indices.to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = logit_matching_loss(model(features[batch]), targets[batch])
            loss.backward()
            optimizer.step()
            total_loss += loss.item()
            steps += 1
    return total_loss / max(steps, 1)
