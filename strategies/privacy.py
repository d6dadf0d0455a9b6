"""Differential-privacy math for DP-FedAvg (McMahan et al. 2018, arXiv:1710.06963), as pure functions.

Each client's update is clipped to L2 norm C; the server averages the clipped updates
with a fixed denominator (the expected number of clients: m of N with fixed-size
sampling, q * N with Poisson sampling, whatever replies arrive) and adds Gaussian
noise of standard deviation z * C / denominator to the average, z being the noise
multiplier. Equivalently: noise of std z * C on the sum of clipped updates.

The release happens even when no update arrives (a Poisson round may sample nobody):
the mechanism the accountant analyses outputs "sum + noise" in every round, so an
empty round releases noise alone. Keeping the model unchanged instead would reveal
that nobody took part, an output the analysis does not cover.

Only the floating-point arrays are clipped, summed and noised (as Flower 1.45's DP
mods do). Integer arrays, BatchNorm's `num_batches_tracked`, are counters of local
steps, which follow each client's data size: they are not released (their update is
0, so the global model keeps its counters), where averaging them would publish
something the noise does not cover. They only matter to BatchNorm without momentum.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from strategies.aggregation import global_norm, is_parameter
from strategies.arrays import Arrays


def clip_update(update: Arrays, clipping_norm: float) -> Arrays:
    """Scale the floating-point arrays of `update` so their global L2 norm is at most `clipping_norm`.

    Unchanged if within; integer arrays (step counters) are never scaled.
    """
    norm = global_norm(update)
    if norm <= clipping_norm:
        return update
    scale = clipping_norm / norm
    return {key: (value * scale).astype(value.dtype) if is_parameter(value) else value for key, value in update.items()}


def noise_std(noise_multiplier: float, clipping_norm: float, denominator: float) -> float:
    """Standard deviation of the noise on the average of clipped updates with a fixed `denominator`."""
    return noise_multiplier * clipping_norm / denominator


def private_average(
    updates: Sequence[Arrays],
    like: Arrays,
    denominator: float,
    clipping_norm: float,
    noise_multiplier: float,
    rng: np.random.Generator,
) -> Arrays:
    """Clip each update, sum, divide by `denominator` and add Gaussian noise; shaped like `like`.

    `updates` may be empty: the result is then the noise alone. Integer arrays of `like`
    are not released: their entries of the result are 0.
    """
    if denominator <= 0:
        raise ValueError(f"the denominator of a private average must be > 0, got {denominator}")
    std = noise_std(noise_multiplier, clipping_norm, denominator)
    clipped = [clip_update(update, clipping_norm) for update in updates]
    averaged: Arrays = {}
    for key, reference in like.items():
        if not is_parameter(reference):
            averaged[key] = np.zeros_like(reference)
            continue
        total = np.zeros(reference.shape, dtype=np.float64)
        for update in clipped:
            total += update[key]
        noised = total / denominator + rng.normal(0.0, std, size=reference.shape)
        averaged[key] = noised.astype(reference.dtype)
    return averaged
