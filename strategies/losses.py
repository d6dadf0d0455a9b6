"""Loss terms as plain functions on tensors, tested directly.

- `proximal_term`: FedProx's sum of squared distances to the global weights
  (Li et al. 2020, eq. 2); the client adds (mu / 2) times it to every local step.
- `distillation_loss`: the temperature-softened KL divergence FedDF's server
  distillation minimises (Lin et al. 2020; the authors' code has no T^2 factor);
- `logit_matching_loss`: FedMD's digest loss, the mean absolute error between the
  party's logits and the consensus logits (the authors' Keras `mean_absolute_error`);
- `label_distillation_term`: FD's regulariser, the cross entropy between the model's
  softmax and the teacher's softmax of the logits averaged for the sample's label.
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
    """KL(teacher || student at temperature T), averaged over the batch (FedDF: no T^2 factor)."""
    student_log_probs = F.log_softmax(student_logits / temperature, dim=-1)
    return F.kl_div(student_log_probs, teacher_probs, reduction="batchmean")


def logit_matching_loss(student_logits: torch.Tensor, target_logits: torch.Tensor) -> torch.Tensor:
    """Mean absolute error between logits, over classes and samples (FedMD's digest)."""
    return (student_logits - target_logits).abs().mean()


def label_distillation_term(
    logits: torch.Tensor,
    labels: torch.Tensor,
    teacher: torch.Tensor,
    has_teacher: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """FD's regulariser: mean over the batch of CE(softmax(teacher[y] / T), softmax(logits / T)).

    `teacher` holds one logit vector per label (labels x classes); samples whose label
    has no teacher (`has_teacher[y]` false) contribute 0, so the term is 0 without any.
    """
    targets = soft_labels(teacher[labels], temperature)
    per_sample = -(targets * F.log_softmax(logits / temperature, dim=-1)).sum(dim=-1)
    return (per_sample * has_teacher[labels].to(per_sample.dtype)).mean()
