"""What the distilling strategies (FedDF, federated distillation) need from the app: a `Distiller`.

The server-side distillation itself (a model of the run's architecture, the public
set, the optimiser) belongs to the app that knows the data and the models; a
strategy only calls these methods, so it can run in any Flower app that supplies one
(fedapp's is `fedapp/distillation.py`).
"""

from __future__ import annotations

from typing import Protocol

import torch

from strategies.arrays import Arrays


class Distiller(Protocol):
    """Turns client models into soft labels on a public set and distils soft labels into a model."""

    @property
    def public_size(self) -> int:
        """Number of samples in the public set."""
        ...

    @property
    def temperature(self) -> float:
        """The softmax temperature of the soft labels."""
        ...

    def describe(self) -> str:
        """One line with the distillation settings, for the strategy's summary."""
        ...

    def ensemble_soft_labels(self, members: list[Arrays]) -> torch.Tensor:
        """Soft labels of the ensemble of `members` (weights of the server's architecture) on the public set."""
        ...

    def distil(self, student: Arrays, targets: torch.Tensor, server_round: int) -> Arrays:
        """Fit `student` to `targets` on the public set; return the new weights."""
        ...
