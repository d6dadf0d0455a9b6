"""The server's optimizer step on the averaged update (FedAvg, FedAvgM, FedSGD).

The server treats the negative averaged client update as a pseudo-gradient
g = w - avg_k(w_k) and takes an SGD step with learning rate eta and optional heavy-
ball momentum beta (Hsu et al. 2019, "Measuring the Effects of Non-Identical Data
Distribution", FedAvgM):

    v <- beta v + g,    w <- w - eta v

With eta = 1 and beta = 0 this is plain FedAvg (w <- avg_k w_k). FedSGD uses the same
step with g = lr * (weighted mean gradient).

Why not Flower's `FedAvgM`: its momentum lives inside its own `aggregate_train` on
Flower's average, so it cannot step on DP's noised average or FedSGD's gradients;
this step is one function that FedAvg, FedProx, FedSGD and FedDF share and checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from strategies.arrays import Arrays


@dataclass
class ServerOptimizer:
    """SGD with momentum over model arrays; `velocity` is its only state."""

    learning_rate: float = 1.0
    momentum: float = 0.0
    velocity: Arrays = field(default_factory=dict)

    def step(self, weights: Arrays, pseudo_gradient: Arrays) -> Arrays:
        """Return the new weights after one step along `-pseudo_gradient`."""
        if self.momentum > 0:
            self.velocity = {
                key: self.momentum * self.velocity[key] + grad if key in self.velocity else grad.copy()
                for key, grad in pseudo_gradient.items()
            }
            direction = self.velocity
        else:
            direction = pseudo_gradient
        return {
            key: (weights[key].astype(np.float64) - self.learning_rate * direction[key].astype(np.float64)).astype(
                weights[key].dtype
            )
            for key in weights
        }

    def state_dict(self) -> dict[str, Arrays]:
        """The momentum buffer (empty before the first step or without momentum)."""
        return {"velocity": dict(self.velocity)}

    def load_state_dict(self, state: dict[str, Arrays]) -> None:
        """Restore the momentum buffer saved by `state_dict`."""
        self.velocity = dict(state["velocity"])
