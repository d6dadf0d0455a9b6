"""What the distilling strategies (FedDF, FedMD's server model) need from the app: a `Distiller`.

The server-side distillation itself (a model of the run's architecture, the public
set and the distillation data, the labelled server validation split, the optimiser
and its schedule) belongs to the app that knows the data and the models; a strategy
only calls these methods, so it can run in any Flower app that supplies one
(fedapp's is `fedapp/distillation.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from strategies.arrays import Arrays


@dataclass(frozen=True)
class Distillation:
    """What one server distillation kept, and figures about it for the round's record.

    `metrics` has `distill_steps` and, with a validation split, `distill_validation_start`,
    `distill_validation_best`, `distill_best_step` and `distill_fell_back` (1 when the
    starting model was kept); `consensus_accuracy` when the teacher could be scored.
    """

    arrays: Arrays
    metrics: dict[str, float] = field(default_factory=dict)


class Distiller(Protocol):
    """Distils a teacher (an ensemble of client models, or consensus logits) into a student model."""

    @property
    def public_size(self) -> int:
        """Number of samples in the public set (FedMD's alignment data)."""
        ...

    def public_labels(self) -> np.ndarray | None:
        """The public set's labels, hidden from the strategy's math but for scoring a consensus; None if unknown."""
        ...

    def describe(self) -> str:
        """One line with the distillation settings, for the strategy's summary."""
        ...

    def distil_ensemble(self, student: Arrays, members: list[Arrays], server_round: int) -> Distillation:
        """FedDF: fit `student` to softmax(mean of the members' logits / T) on the distillation data."""
        ...

    def distil_logits(
        self, student: Arrays, logits: np.ndarray, samples: np.ndarray, server_round: int
    ) -> Distillation:
        """Fit `student` to softmax(`logits` / T), the teacher's logits on public samples `samples`."""
        ...
