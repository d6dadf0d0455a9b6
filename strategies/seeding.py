"""Seeds derived from the run's `seed`, so every random choice is reproducible.

Each consumer (model initialization, partitioning, client sampling, stragglers, a
client's data order in a round, DP noise) gets its own stream, derived from the run
seed and labels such as the round and the node. Nothing draws from shared global
state, so a run resumed at round k makes exactly the draws an uninterrupted run
makes from round k on.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch


def derive_seed(seed: int, *labels: int | str) -> int:
    """Return a stable 63-bit seed for `labels` (e.g. round, node key) under run `seed`."""
    digest = hashlib.blake2b(repr((seed, *labels)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def numpy_rng(seed: int, *labels: int | str) -> np.random.Generator:
    """A NumPy generator seeded from `derive_seed(seed, *labels)`."""
    return np.random.default_rng(derive_seed(seed, *labels))


def torch_generator(seed: int, *labels: int | str) -> torch.Generator:
    """A CPU torch generator seeded from `derive_seed(seed, *labels)`."""
    return torch.Generator().manual_seed(derive_seed(seed, *labels))
