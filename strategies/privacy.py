"""Differential-privacy math for DP-FedAvg (McMahan et al. 2018, arXiv:1710.06963), as pure functions.

Each client's update is clipped to L2 norm C; the server averages the clipped updates
with a fixed denominator (the number of sampled clients m, whatever replies arrive)
and adds Gaussian noise of standard deviation z * C / m to the average, z being the
noise multiplier. Equivalently: noise of std z * C on the sum of clipped updates.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from strategies.aggregation import global_norm
from strategies.arrays import Arrays


def clip_update(update: Arrays, clipping_norm: float) -> Arrays:
    """Scale `update` down so its global L2 norm is at most `clipping_norm` (unchanged if within)."""
    norm = global_norm(update)
    if norm <= clipping_norm:
        return update
    scale = clipping_norm / norm
    return {key: (value * scale).astype(value.dtype) for key, value in update.items()}


def noise_std(noise_multiplier: float, clipping_norm: float, num_sampled: int) -> float:
    """Standard deviation of the noise added to the average of `num_sampled` clipped updates."""
    return noise_multiplier * clipping_norm / num_sampled


def private_average(
    updates: Sequence[Arrays],
    num_sampled: int,
    clipping_norm: float,
    noise_multiplier: float,
    rng: np.random.Generator,
) -> Arrays:
    """Clip each update, sum, divide by `num_sampled` (fixed denominator) and add Gaussian noise."""
    if not updates:
        raise ValueError("private_average needs at least one update")
    std = noise_std(noise_multiplier, clipping_norm, num_sampled)
    clipped = [clip_update(update, clipping_norm) for update in updates]
    averaged: Arrays = {}
    for key, first in updates[0].items():
        total = np.zeros(first.shape, dtype=np.float64)
        for update in clipped:
            total += update[key]
        noised = total / num_sampled + rng.normal(0.0, std, size=first.shape)
        averaged[key] = noised.astype(first.dtype)
    return averaged
