"""Differential privacy for the weight-averaging strategies (DP-FedAvg, McMahan et al. 2018).

`DifferentialPrivacy` replaces a strategy's weighted average of client updates by
`private_average` (clip to C, fixed denominator m, Gaussian noise z*C/m) and keeps
the privacy ledger. Two modes:

- `server-fixed`: clients send raw updates, the server clips them;
- `client-fixed`: the server asks clients to clip (Flower's `fixedclipping_mod` on
  the ClientApp's train handler reads `clipping_norm` from the train config); the
  server clips again, which changes nothing for honest clients and bounds the others.

Why not Flower's `DifferentialPrivacy*FixedClipping` wrappers: they add the noise to
the strategy's output model, which is only right when the server update is the plain
average (server learning rate 1, no momentum), and they average with the strategy's
own weights, so a client with many examples can weigh more than 1/m and the noise
no longer matches the sensitivity. Here the noise goes on the uniformly averaged,
clipped update, before the server optimizer: DP holds for any server learning rate
or momentum (post-processing).
"""

from __future__ import annotations

from collections.abc import Sequence

from flwr.app import ConfigRecord
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

from strategies.accounting import PrivacyLedger, RoundEvent
from strategies.aggregation import global_norm
from strategies.arrays import Arrays
from strategies.privacy import noise_std, private_average
from strategies.seeding import numpy_rng


class DifferentialPrivacy:
    """Clipped, noised averaging of client updates, with cumulative (epsilon, delta) accounting."""

    def __init__(self, mode: str, clipping_norm: float, noise_multiplier: float, delta: float, seed: int) -> None:
        if mode not in ("client-fixed", "server-fixed"):
            raise ValueError(f"unknown dp mode {mode!r}; allowed: client-fixed, server-fixed")
        self.mode = mode
        self.clipping_norm = clipping_norm
        self.noise_multiplier = noise_multiplier
        self.seed = seed
        self.ledger = PrivacyLedger(delta)

    def configure(self, config: ConfigRecord) -> None:
        """Ask clients to clip their updates (client-fixed mode)."""
        if self.mode == "client-fixed":
            config[KEY_CLIPPING_NORM] = self.clipping_norm

    def average(
        self, updates: Sequence[Arrays], num_sampled: int, population: int, server_round: int
    ) -> tuple[Arrays, dict[str, float]]:
        """Return the private average of `updates` and the round's privacy figures."""
        received_max = max(global_norm(update) for update in updates)
        rng = numpy_rng(self.seed, "dp-noise", server_round)
        average = private_average(updates, num_sampled, self.clipping_norm, self.noise_multiplier, rng)
        epsilon = self.ledger.record(RoundEvent(num_sampled, population, self.noise_multiplier))
        return average, {
            "epsilon": epsilon,
            "dp_delta": self.ledger.delta,
            "dp_noise_std": noise_std(self.noise_multiplier, self.clipping_norm, num_sampled),
            "max_received_update_norm": received_max,
        }
