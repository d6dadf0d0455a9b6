"""Adaptive clipping (Andrew, Thakkar, McMahan, Ramaswamy 2021, "Differentially Private Learning
with Adaptive Clipping", arXiv:1905.03871, Algorithm 1), as pure functions.

Instead of a fixed clipping norm C, the server tracks the gamma-quantile of the
clients' update norms privately and clips at it. Per round t, with m the expected
number of clients (m of N for fixed sampling, q * N for Poisson):

    b_i   = 1[||update_i|| <= C_t] - 1/2              centred "unclipped" bit, sensitivity 1/2
    b~    = (sum_i b_i + N(0, sigma_b^2)) / m + 1/2     noisy unclipped fraction, clamped to [0, 1]
    C_t+1 = C_t * exp(-eta * (b~ - gamma))              geometric update

and the clipped updates are averaged with noise z_delta * C_t (the norm they were
clipped to). The round is one Gaussian mechanism on (sum of clipped updates, sum of
bits), so its noise multiplier for the accountant is the user's z with

    z^-2 = z_delta^-2 + (2 sigma_b)^-2,  i.e.  z_delta = (z^-2 - (2 sigma_b)^-2)^(-1/2)

which needs z < 2 sigma_b; the paper recommends sigma_b = m / 20, C_0 = 0.1,
eta = 0.2, gamma = 0.5. The bits are centred as in TF-Privacy's
`QuantileEstimatorQuery`, the authors' implementation.

Why not Flower's `DifferentialPrivacy{Server,Client}SideAdaptiveClipping` (flwr 1.41
and 1.42): they count *clipped* updates but apply the update rule written for the
*unclipped* fraction, so C runs away from the target quantile (from C_0 = 0.1 with a
median update norm of 0.92 it fell to 0.0018 in 40 rounds, where the paper's rule
reaches 0.90); they also scale the noise with the updated C_t+1 instead of the C_t
used to clip, do not centre the bits (doubling the count's sensitivity), divide by
the number of replies rather than m, and draw from NumPy's global generator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

COUNT_NOISE_DIVISOR = 20.0


def default_count_stddev(expected_clients: float) -> float:
    """The paper's recommended noise on the count of unclipped updates: sigma_b = m / 20."""
    return expected_clients / COUNT_NOISE_DIVISOR


def update_noise_multiplier(noise_multiplier: float, count_stddev: float) -> float:
    """z_delta, the multiplier of the noise on the updates that leaves the round an overall z.

    Raises
    ------
    ValueError
        If z >= 2 sigma_b: the count's noise alone would already spend the round's budget.
    """
    if noise_multiplier == 0:
        return 0.0
    if noise_multiplier >= 2 * count_stddev:
        raise ValueError(
            f"noise multiplier {noise_multiplier} needs a count noise stddev above {noise_multiplier / 2} "
            f"(z < 2 sigma_b), got {count_stddev}"
        )
    return (noise_multiplier**-2 - (2 * count_stddev) ** -2) ** -0.5


def noisy_unclipped_fraction(
    norms: Sequence[float],
    clipping_norm: float,
    expected_clients: float,
    count_stddev: float,
    rng: np.random.Generator,
) -> float:
    """b~: the noised share of updates no longer than `clipping_norm`, in [0, 1]."""
    centred = sum((1.0 if norm <= clipping_norm else 0.0) - 0.5 for norm in norms)
    noised = centred + (rng.normal(0.0, count_stddev) if count_stddev > 0 else 0.0)
    return min(1.0, max(0.0, noised / expected_clients + 0.5))


def next_clipping_norm(
    clipping_norm: float, unclipped_fraction: float, target_quantile: float, learning_rate: float
) -> float:
    """C_t+1 = C_t exp(-eta (b~ - gamma)): shrink when more than gamma of the updates fit, grow otherwise."""
    return clipping_norm * math.exp(-learning_rate * (unclipped_fraction - target_quantile))
