"""Loss terms as plain functions on tensors, tested directly.

- `proximal_term`: FedProx's sum of squared distances to the global weights
  (Li et al. 2020, eq. 2); the client adds (mu / 2) times it to every local step.
- `distillation_loss`: Hinton et al.'s temperature-softened KL divergence, used to
  fit a model to soft labels (federated distillation's digest step and server-side
  distillation).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F


def proximal_term(params: Iterable[torch.Tensor], anchors: Iterable[torch.Tensor]) -> torch.Tensor:
    """Return sum_i ||p_i - a_i||^2 (its gradient w.r.t. p_i is 2 (p_i - a_i))."""
    return sum(((p - a) ** 2).sum() for p, a in zip(params, anchors, strict=True))  # type: ignore[return-value]


def soft_labels(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Softmax of `logits / temperature`: class probabilities softened by the temperature."""
    return F.softmax(logits / temperature, dim=-1)


def distillation_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student at temperature T), times T^2 so gradients keep their scale."""
    student_log_probs = F.log_softmax(student_logits / temperature, dim=-1)
    return F.kl_div(student_log_probs, teacher_probs, reduction="batchmean") * temperature**2
