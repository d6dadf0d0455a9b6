"""Aggregation math as pure functions on `name -> ndarray` dicts (no Flower types).

The FedAvg paper's server update is the average of the client models weighted by
their numbers of examples, w <- sum_k (n_k / n) w_k (McMahan et al. 2017, Alg. 1).
Sums are done in float64 and cast back to each array's dtype.

Why not Flower's `aggregate_arrayrecords`: it averages whole reply records in their
own dtype with the examples as weights; we average updates (w_k - w) in float64, also
uniformly, and DP and FedSGD replace the average, so the math works on plain arrays.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from strategies.arrays import Arrays


def weighted_average(models: Iterable[Arrays], weights: Sequence[float]) -> Arrays:
    """Return sum_k w_k m_k / sum_k w_k, key by key.

    `models` may be a generator: each model is read once, in order, and can be freed
    right after, so a round's updates are never all held at once. Each adds
    m_k * (w_k / total), in float64, to a running sum per key, in the order given; the
    result depends on that order bit for bit, and only on it.
    """
    if not weights:
        raise ValueError("weighted_average needs at least one model")
    total = float(sum(weights))
    if total <= 0:
        raise ValueError(f"weights must sum to a positive number, got {list(weights)}")
    sums: Arrays = {}
    dtypes: dict[str, np.dtype] = {}
    term: Arrays = {}
    for model, weight in zip(models, weights, strict=True):
        if not sums:
            sums = {key: np.zeros(value.shape, dtype=np.float64) for key, value in model.items()}
            dtypes = {key: value.dtype for key, value in model.items()}
            term = {key: np.empty(value.shape, dtype=np.float64) for key, value in model.items()}
        for key, acc in sums.items():
            np.multiply(model[key], weight / total, out=term[key], dtype=np.float64)
            np.add(acc, term[key], out=acc)
    return {key: acc.astype(dtypes[key]) for key, acc in sums.items()}


def difference(minuend: Arrays, subtrahend: Arrays) -> Arrays:
    """Return minuend - subtrahend, key by key (e.g. a client's update w_k - w)."""
    return {key: minuend[key] - subtrahend[key] for key in minuend}


def is_parameter(array: np.ndarray) -> bool:
    """Whether `array` holds floating-point values (weights, BatchNorm running statistics).

    Integer arrays are counters, not parameters: BatchNorm's `num_batches_tracked` grows
    by one per local step, so one round of 60 steps is an "update" of 60 per layer.
    """
    return bool(np.issubdtype(array.dtype, np.floating))


def global_norm(arrays: Arrays) -> float:
    """The L2 norm of the floating-point arrays taken together as one flat vector.

    Integer arrays (BatchNorm's step counters) are left out: a weight update of norm
    0.28 plus a counter step of 60 would otherwise have norm 60, and clipping,
    adaptive clipping and `max-update-norm` would measure the step count, not the update.
    """
    return float(
        np.sqrt(sum(float(np.sum(np.square(a, dtype=np.float64))) for a in arrays.values() if is_parameter(a)))
    )


def aggregation_weights(num_examples: Sequence[int], weighting: str) -> list[float]:
    """Weights for averaging: the examples each client trained on, or 1 each ('uniform')."""
    if weighting == "examples":
        return [float(n) for n in num_examples]
    if weighting == "uniform":
        return [1.0] * len(num_examples)
    raise ValueError(f"unknown weighting {weighting!r}; allowed: examples, uniform")


def normalized_steps(steps: int, momentum: float = 0.0) -> float:
    """FedNova's ||a_i||_1 for `steps` local SGD steps with heavy-ball `momentum` rho (Wang et al. 2020).

    Plain SGD moves x - y_i = lr * sum of the steps' gradients, so a_i = tau_i. With a
    momentum buffer v <- rho v + g (reset each round) the gradient of step t counts
    (1 - rho^(tau - t + 1)) / (1 - rho) times, which sums to
    a_i = [tau - rho (1 - rho^tau) / (1 - rho)] / (1 - rho).
    """
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    if momentum == 0:
        return float(steps)
    return (steps - momentum * (1 - momentum**steps) / (1 - momentum)) / (1 - momentum)


def fednova_scales(normalizers: Sequence[float], weights: Sequence[float]) -> list[float]:
    """Factors tau_eff / a_i that turn a weighted average of updates into FedNova's normalised one.

    FedNova's step is tau_eff * sum_i p_i (x - y_i) / a_i with p_i = w_i / sum_j w_j and
    tau_eff = sum_i p_i a_i; scaling each update by tau_eff / a_i before the weighted
    average gives exactly that. With equal a_i every factor is 1 (FedAvg). A client that
    ran no step (a_i = 0) sent no change and gets factor 0.
    """
    if len(normalizers) != len(weights):
        raise ValueError(f"got {len(normalizers)} normalizers but {len(weights)} weights")
    total = float(sum(weights))
    if total <= 0:
        raise ValueError(f"weights must sum to a positive number, got {list(weights)}")
    effective = sum(weight / total * a for weight, a in zip(weights, normalizers, strict=True))
    return [effective / a if a > 0 else 0.0 for a in normalizers]
