"""Where differential privacy's Gaussian noise comes from: secret by default, seeded only on request.

DP-FedAvg's guarantee holds only if nobody can predict the noise. A generator seeded
from the run config is predictable by every node (each one receives the config): it
could regenerate the noise and subtract it, so such noise protects nobody. The
default source therefore makes a fresh generator for every release from 128 bits of
the operating system's entropy, in the process that aggregates, at the moment the
noise is drawn. A generator made earlier and inherited through `fork` would repeat
its draws in every child; one made at the moment of use cannot. Its seed and state
are never logged, checkpointed or reported: a resumed run draws fresh noise, which
DP does not mind.

`seeded_noise(seed)` is the explicit opt-in for experiments that must be repeated
bit for bit; runs that use it are labelled "not private" (`SEEDED_INSECURE`).

Known limitation: floating-point Gaussian sampling is not an exactly private
mechanism (Mironov 2012); acceptable for research code, as in Opacus and TF-Privacy.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from strategies.seeding import numpy_rng

SECRET = "secret"  # noqa: S105 (the name of a noise source, not a password)
SEEDED_INSECURE = "seeded-insecure"
NOISE_SOURCES = (SECRET, SEEDED_INSECURE)


@dataclass(frozen=True)
class NoiseSource:
    """A named way to get the noise generator of one round's release."""

    name: str
    generator: Callable[[int], np.random.Generator]

    @property
    def private(self) -> bool:
        """True when nobody can regenerate the noise (it comes from OS entropy)."""
        return self.name == SECRET


def secret_noise() -> NoiseSource:
    """A new generator from 128 bits of OS entropy for every release."""
    return NoiseSource(SECRET, lambda _server_round: np.random.default_rng(secrets.randbits(128)))


def seeded_noise(seed: int) -> NoiseSource:
    """Noise derived from the run `seed` and the round: repeatable, and therefore NOT private."""
    return NoiseSource(SEEDED_INSECURE, lambda server_round: numpy_rng(seed, "dp-noise", server_round))
