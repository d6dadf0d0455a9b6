"""Aggregation math as pure functions on `name -> ndarray` dicts (no Flower types).

The FedAvg paper's server update is the average of the client models weighted by
their numbers of examples, w <- sum_k (n_k / n) w_k (McMahan et al. 2017, Alg. 1).
Sums are done in float64 and cast back to each array's dtype.

Why not Flower's `aggregate_arrayrecords`: it averages whole reply records in their
own dtype with the examples as weights; we average updates (w_k - w) in float64, also
uniformly, and DP and FedSGD replace the average, so the math works on plain arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from strategies.arrays import Arrays


def weighted_average(models: Sequence[Arrays], weights: Sequence[float]) -> Arrays:
    """Return sum_k w_k m_k / sum_k w_k, key by key."""
    if not models:
        raise ValueError("weighted_average needs at least one model")
    if len(models) != len(weights):
        raise ValueError(f"got {len(models)} models but {len(weights)} weights")
    total = float(sum(weights))
    if total <= 0:
        raise ValueError(f"weights must sum to a positive number, got {list(weights)}")
    averaged: Arrays = {}
    for key, first in models[0].items():
        acc = np.zeros(first.shape, dtype=np.float64)
        for model, weight in zip(models, weights, strict=True):
            acc += model[key].astype(np.float64) * (weight / total)
        averaged[key] = acc.astype(first.dtype)
    return averaged


def difference(minuend: Arrays, subtrahend: Arrays) -> Arrays:
    """Return minuend - subtrahend, key by key (e.g. a client's update w_k - w)."""
    return {key: minuend[key] - subtrahend[key] for key in minuend}


def global_norm(arrays: Arrays) -> float:
    """The L2 norm of all arrays taken together as one flat vector."""
    return float(np.sqrt(sum(float(np.sum(np.square(a, dtype=np.float64))) for a in arrays.values())))


def aggregation_weights(num_examples: Sequence[int], weighting: str) -> list[float]:
    """Weights for averaging: the examples each client trained on, or 1 each ('uniform')."""
    if weighting == "examples":
        return [float(n) for n in num_examples]
    if weighting == "uniform":
        return [1.0] * len(num_examples)
    raise ValueError(f"unknown weighting {weighting!r}; allowed: examples, uniform")
