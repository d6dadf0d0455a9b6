"""Local computation on a node (and on the server): SGD training, evaluation, gradients, logits.

No Flower imports: these functions take a model and tensors and return numbers or
tensors, so they are the same in a ClientApp, in the server's central evaluation, in
the centralized baseline and in unit tests. The loss and the metrics follow the
split's task (`tasks.py`): cross-entropy and accuracy for classes, MSE and RMSE, MAE,
R² for regression targets. The strategies' client-side steps (FedProx's proximal
term, SCAFFOLD's correction, Ditto's personal step) are thin wrappers here around the
pure functions in `strategies/`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from fedapp import tasks
from fedapp.data import LabelledSplit
from strategies.control_variates import apply_correction, correction, updated_client_control
from strategies.losses import logit_matching_loss, proximal_term
from strategies.personalization import ditto_personal_step

ExtraLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""A term added to a training step's loss, from the batch's logits and labels (FD's regulariser)."""
LogitObserver = Callable[[torch.Tensor, torch.Tensor], None]
"""Sees each training step's logits (detached) and labels (FD's per-label averages)."""

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


AfterStep = Callable[[torch.Tensor, torch.Tensor], object]
"""Called with a step's batch (features, labels) right after the optimizer's step."""


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
    momentum: float = 0.0,
    after_step: AfterStep | None = None,
    extra_loss: ExtraLoss | None = None,
    observe: LogitObserver | None = None,
    device: torch.device = CPU,
    augment: Augment | None = None,
) -> TrainResult:
    """Train `model` in place with minibatch SGD on `data` for `epochs` epochs.

    With `proximal_mu` > 0 every step minimises loss + (mu / 2) ||w - w_start||^2, where
    w_start are the weights the model had on entry (FedProx's local objective). With
    `momentum` > 0 the steps use a heavy-ball buffer v <- momentum v + g, started
    afresh here (each round, as in NIID-Bench). `after_step` sees every batch (as
    trained on, augmented if `augment`) after its step. `extra_loss` adds a term
    computed from the batch's logits and labels (FD's regulariser); `observe` is shown
    every batch's logits and labels (FD's averages). With `augment`, every batch is
    augmented first (its draws come from `generator` too).
    """
    model.to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=momentum)
    anchors = [p.detach().clone() for p in model.parameters()] if proximal_mu > 0 else []
    features, labels = data.features.to(device), data.labels.to(device)
    total_loss, steps = 0.0, 0
    for _ in range(epochs):
        for indices in _batches(len(labels), batch_size, generator):
            batch = indices.to(device)
            batch_features, batch_labels = features[batch], labels[batch]
            optimizer.zero_grad(set_to_none=True)
            inputs = batch_features if augment is None else augment(batch_features, generator)
            logits = model(inputs)
            loss = tasks.loss(logits, batch_labels)
            if extra_loss is not None:
                loss = loss + extra_loss(logits, batch_labels)
            if observe is not None:
                observe(logits.detach(), batch_labels)
            if proximal_mu > 0:
                loss = loss + proximal_mu / 2 * proximal_term(model.parameters(), anchors)
            loss.backward()
            optimizer.step()
            if after_step is not None:
                after_step(inputs, batch_labels)
            total_loss += loss.item()
            steps += 1
    return TrainResult(loss=total_loss / max(steps, 1), steps=steps, examples=len(labels))


def train_scaffold(
    model: nn.Module,
    data: LabelledSplit,
    *,
    server_control: Mapping[str, torch.Tensor],
    client_control: Mapping[str, torch.Tensor],
    learning_rate: float,
    device: torch.device = CPU,
    **sgd: Any,
) -> tuple[TrainResult, dict[str, torch.Tensor]]:
    """SCAFFOLD's local training: `train_sgd`, each step followed by p <- p - lr (c - c_i).

    Returns the training result and the client's new control variate c_i+ (option II), on the CPU.
    """
    model.to(device)
    parameters = dict(model.named_parameters())
    server = {key: value.to(device) for key, value in server_control.items()}
    client = {key: value.to(device) for key, value in client_control.items()}
    start = {key: parameters[key].detach().clone() for key in server}
    corrections = correction(server, client)
    result = train_sgd(
        model,
        data,
        learning_rate=learning_rate,
        after_step=lambda *_: apply_correction(parameters, corrections, learning_rate),
        device=device,
        **sgd,
    )
    end = {key: parameters[key].detach() for key in server}
    updated = updated_client_control(client, server, start, end, result.steps, learning_rate)
    return result, {key: value.cpu() for key, value in updated.items()}


def train_ditto(
    model: nn.Module,
    personal: nn.Module,
    data: LabelledSplit,
    *,
    lam: float,
    learning_rate: float,
    device: torch.device = CPU,
    **sgd: Any,
) -> tuple[TrainResult, float]:
    """Ditto's local training: `train_sgd` of the global copy and, on each of its batches, a personal step.

    The personal model is pulled toward the weights `model` holds on entry (the global
    model of the round). Returns the global copy's result and the personal steps' mean loss.
    """
    model.to(device)
    personal.to(device).train()
    anchors = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    losses: list[float] = []
    result = train_sgd(
        model,
        data,
        learning_rate=learning_rate,
        after_step=lambda features, labels: losses.append(
            ditto_step(personal, features, labels, anchors, learning_rate, lam)
        ),
        device=device,
        **sgd,
    )
    return result, sum(losses) / max(len(losses), 1)


def ditto_step(
    model: nn.Module,
    features: torch.Tensor,
    labels: torch.Tensor,
    anchors: Mapping[str, torch.Tensor],
    learning_rate: float,
    lam: float,
) -> float:
    """One personal step on a batch: the loss's gradient, then Ditto's step toward `anchors`; returns the loss."""
    model.zero_grad(set_to_none=True)
    loss = tasks.loss(model(features), labels)
    loss.backward()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            parameter.copy_(ditto_personal_step(parameter, parameter.grad, anchors[name], learning_rate, lam))
    return loss.item()


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
