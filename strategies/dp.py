"""Differential privacy for the weight-averaging strategies (DP-FedAvg, McMahan et al. 2018, arXiv:1710.06963).

`DifferentialPrivacy` replaces a strategy's weighted average of client updates by
`private_average` (clip to C, fixed denominator, Gaussian noise z*C on the sum),
accounts every release in a `PrivacyLedger`, and refuses a round whose release would
push epsilon past the budget. Modes:

- `server-fixed`: clients send raw updates, the server clips them to C;
- `client-fixed`: the server asks clients to clip (the ClientApp's train handler
  reads `clipping_norm` from the train config, as Flower's `fixedclipping_mod` does,
  and clips with `clip_update`); the server clips again, which changes nothing for
  honest clients and bounds the others;
- `server-adaptive`: the server clips at a norm that tracks a quantile of the update
  norms privately (Andrew et al. 2021, `adaptive_clipping.py`); the noise on the
  clipped-count query is part of the round's noise multiplier z, so the accountant
  sees the same z as for fixed clipping.

Clipping, noise and the update norms cover the floating-point arrays only: integer
arrays (BatchNorm's `num_batches_tracked`, a local step counter) are not measured,
noised or released (`privacy.py`).

The denominator is the expected number of clients (m of N, or q * N with Poisson
sampling) and the accountant's neighbouring relation follows the sampling
(`accounting.py`). Noise comes from `noise.py`: secret unless the app opts into
seeded, non-private noise.

Why not Flower's `DifferentialPrivacy*FixedClipping` wrappers: they add the noise to
the strategy's output model, which is only right when the server update is the plain
average (server learning rate 1, no momentum), and they average with the strategy's
own weights, so a client with many examples can weigh more than 1/m and the noise
no longer matches the sensitivity. Here the noise goes on the uniformly averaged,
clipped update, before the server optimizer: DP holds for any server learning rate
or momentum (post-processing). Their accountant (flwr 1.35+) accepts only "no
amplification" with add/remove-one neighbours; where its assumptions hold it agrees
with ours (the tests check it). Why not Flower's adaptive wrappers: `adaptive_clipping.py`.

What epsilon covers: the global models (and, with adaptive clipping, the clipping
norms) the server sends out. The server is trusted, as in central DP: what it records
for itself in metrics.json (train loss, update norms, federated evaluation) is not
privatized and must not be published as private.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import numpy as np
from flwr.app import ConfigRecord
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

from strategies.accounting import PrivacyLedger, RoundEvent
from strategies.adaptive_clipping import (
    default_count_stddev,
    next_clipping_norm,
    noisy_unclipped_fraction,
    update_noise_multiplier,
)
from strategies.aggregation import global_norm
from strategies.arrays import Arrays
from strategies.noise import NoiseSource, secret_noise
from strategies.privacy import noise_std, private_average
from strategies.sampling import FIXED, ClientSampler

CLIENT_FIXED = "client-fixed"
SERVER_FIXED = "server-fixed"
SERVER_ADAPTIVE = "server-adaptive"
DP_MODES = (CLIENT_FIXED, SERVER_FIXED, SERVER_ADAPTIVE)
AUTO = -1.0


@dataclass(frozen=True)
class PrivacySettings:
    """What the user chose: mode, C (C_0 when adaptive), z, delta, budget, adaptive clipping's knobs.

    `max_epsilon` 0 means no budget; `count_stddev` AUTO means sigma_b = expected clients / 20.
    """

    mode: str
    clipping_norm: float
    noise_multiplier: float
    delta: float
    max_epsilon: float = 0.0
    target_quantile: float = 0.5
    clipping_norm_lr: float = 0.2
    count_stddev: float = AUTO

    def __post_init__(self) -> None:
        if self.mode not in DP_MODES:
            raise ValueError(f"unknown dp mode {self.mode!r}; allowed: {', '.join(DP_MODES)}")

    @property
    def adaptive(self) -> bool:
        return self.mode == SERVER_ADAPTIVE

    def count_noise(self, expected_clients: float) -> float:
        """sigma_b for a round with `expected_clients` (0 without noise: nothing is private then)."""
        if self.noise_multiplier == 0:
            return 0.0
        return default_count_stddev(expected_clients) if self.count_stddev == AUTO else self.count_stddev

    def update_noise(self, expected_clients: float) -> float:
        """The multiplier of the noise on the updates (z itself unless clipping is adaptive)."""
        if not self.adaptive:
            return self.noise_multiplier
        return update_noise_multiplier(self.noise_multiplier, self.count_noise(expected_clients))


class DifferentialPrivacy:
    """Clipped, noised averaging of client updates, with cumulative (epsilon, delta) accounting and a budget."""

    def __init__(self, settings: PrivacySettings, sampler: ClientSampler, noise: NoiseSource | None = None) -> None:
        self.settings = settings
        self.sampler = sampler
        self.noise = noise or secret_noise()
        self.clipping_norm = settings.clipping_norm
        self.ledger = PrivacyLedger(settings.delta, sampler.method)

    def describe(self) -> dict[str, Any]:
        """The terms of the guarantee, for the run's record: what epsilon means and what it assumes."""
        settings = self.settings
        terms: dict[str, Any] = {
            "mode": settings.mode,
            "noise": self.noise.name,
            "private": self.noise.private,
            "client_sampling": self.sampler.method,
            "sampling_fraction": self.sampler.fraction,
            "neighbouring_relation": self.ledger.neighbouring_relation,
            "accountant": f"RDP (dp-accounting {version('dp-accounting')}, default orders)",
            "noise_multiplier": settings.noise_multiplier,
            "clipping_norm": settings.clipping_norm,
            "delta": settings.delta,
            "max_epsilon": settings.max_epsilon or None,
        }
        if settings.adaptive:
            terms |= {
                "target_unclipped_quantile": settings.target_quantile,
                "clipping_norm_learning_rate": settings.clipping_norm_lr,
                "count_noise_stddev": "expected clients / 20"
                if settings.count_stddev == AUTO
                else settings.count_stddev,
            }
        return terms

    def configure(self, config: ConfigRecord) -> None:
        """Ask clients to clip their updates (client-fixed mode)."""
        if self.settings.mode == CLIENT_FIXED:
            config[KEY_CLIPPING_NORM] = self.clipping_norm

    def round_event(self, population: int) -> RoundEvent:
        """The accountant's view of one round among `population` connected nodes."""
        z = self.settings.noise_multiplier
        if self.sampler.method == FIXED:
            return RoundEvent.fixed(self.sampler.sample_size(population), population, z)
        return RoundEvent.poisson(self.sampler.fraction, z)

    def stop_reason(self, server_round: int, population: int) -> str | None:
        """Why round `server_round` must not run (its release would exceed `max_epsilon`), or None."""
        budget = self.settings.max_epsilon
        if not budget:
            return None
        after = self.ledger.epsilon_with(self.round_event(population))
        if after <= budget:
            return None
        return (
            f"privacy budget: round {server_round} would raise epsilon from {self.ledger.spent():.4f} to "
            f"{after:.4f} > dp-max-epsilon {budget:g} (delta {self.settings.delta:g}, "
            f"{self.ledger.neighbouring_relation})"
        )

    def release(
        self, updates: Sequence[Arrays], like: Arrays, population: int, server_round: int
    ) -> tuple[Arrays, dict[str, float]]:
        """The private average of `updates` (maybe none) shaped like `like`, and the round's privacy figures."""
        expected = self.sampler.expected_clients(population)
        clipping_norm = self.clipping_norm
        update_noise = self.settings.update_noise(expected)
        rng = self.noise.generator(server_round)
        average = private_average(updates, like, expected, clipping_norm, update_noise, rng)
        norms = [global_norm(update) for update in updates]
        figures = {
            "epsilon": self.ledger.record(self.round_event(population)),
            "dp_delta": self.settings.delta,
            "dp_expected_clients": expected,
            "dp_clipping_norm": clipping_norm,
            "dp_noise_std": noise_std(update_noise, clipping_norm, expected),
            "max_received_update_norm": max(norms, default=0.0),
        }
        if self.settings.adaptive:
            figures |= self._adapt(norms, expected, rng)
        return average, figures

    def _adapt(self, norms: list[float], expected: float, rng: np.random.Generator) -> dict[str, float]:
        """Andrew et al.'s step: the noisy unclipped fraction moves C toward the target quantile."""
        settings = self.settings
        count_noise = settings.count_noise(expected)
        fraction = noisy_unclipped_fraction(norms, self.clipping_norm, expected, count_noise, rng)
        self.clipping_norm = next_clipping_norm(
            self.clipping_norm, fraction, settings.target_quantile, settings.clipping_norm_lr
        )
        return {
            "dp_unclipped_fraction": fraction,
            "dp_count_noise_stddev": count_noise,
            "dp_update_noise_multiplier": settings.update_noise(expected),
            "dp_next_clipping_norm": self.clipping_norm,
        }

    def state_dict(self) -> dict[str, Any]:
        """The ledger and the current clipping norm (it moves with adaptive clipping)."""
        return {"ledger": self.ledger.state_dict(), "clipping_norm": self.clipping_norm}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""
        self.ledger.load_state_dict(state["ledger"])
        self.clipping_norm = float(state["clipping_norm"])
