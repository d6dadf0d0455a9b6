"""Local computation on a node (and on the server): SGD training, evaluation, gradients, soft labels.

No Flower imports: these functions take a model and tensors and return numbers or
tensors, so they are the same in a ClientApp, in the server's central evaluation, in
the centralized baseline and in unit tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fedapp.data import LabelledSplit
from strategies.losses import distillation_loss, proximal_term, soft_labels

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


def train_sgd(
    model: nn.Module,
    data: LabelledSplit,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    generator: torch.Generator,
    proximal_mu: float = 0.0,
    device: torch.device = CPU,
) -> TrainResult:
    """Train `model` in place with minibatch SGD on `data` for `epochs` epochs.

    With `proximal_mu` > 0 every step minimises loss + (mu / 2) ||w - w_start||^2, where
    w_start are the weights the model had on entry (FedProx's local objective).
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
            loss = F.cross_entropy(model(features[batch]), labels[batch])
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
