"""Personalised federated learning as pure functions: Ditto's personal step, personal models, spreads.

Ditto (Li, Hu, Beirami, Smith 2021, Algorithm 1): beside its copy of the global model,
client k trains a personal model v_k on the same batches, minimising
F_k(v) + (lambda / 2) ||v - w||^2 with w the global model received this round.
`ditto_personal_step` takes the loss's gradient step and the regulariser's step
implicitly (a proximal step):

    v <- (v - lr grad F_k(v) + lr lambda w) / (1 + lr lambda).

The authors' code takes both explicitly, v <- v - lr (grad F_k(v) + lambda (v - w));
the two agree to first order in lr * lambda (1e-2 in our presets), and the implicit
form is stable for every lambda and gives exactly v = w as lambda -> infinity
(Ditto's limit, where the personal model is the global one) and plain local SGD at
lambda = 0.

A node's personal model (FedBN's own BatchNorm layers, Ditto's v_k) is the global
model with the node's own arrays in place of the global ones (`personal_arrays`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import TypeVar

import torch

Value = TypeVar("Value")


def ditto_personal_step(
    personal: torch.Tensor, gradient: torch.Tensor, anchor: torch.Tensor, learning_rate: float, lam: float
) -> torch.Tensor:
    """One personal step of Ditto: (v - lr g + lr lam w) / (1 + lr lam); the global w when lam is infinite."""
    if math.isinf(lam):
        return anchor.clone()
    pull = learning_rate * lam
    return (personal - learning_rate * gradient + pull * anchor) / (1 + pull)


def personal_arrays(global_arrays: Mapping[str, Value], own: Mapping[str, Value] | None) -> dict[str, Value]:
    """The node's model: the global arrays with those the node keeps for itself in their place."""
    return {**global_arrays, **(own or {})}


def accuracy_spread(accuracies: Sequence[float]) -> dict[str, float]:
    """Mean (unweighted, per client), min and max of the clients' accuracies."""
    if not accuracies:
        raise ValueError("accuracy_spread needs at least one accuracy")
    return {"mean": statistics.fmean(accuracies), "min": min(accuracies), "max": max(accuracies)}
