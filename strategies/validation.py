"""Checks a client's reply before it may be aggregated (a bug or an attack must not get in).

Pure functions on NumPy dicts: a reply is rejected if its arrays have missing or
extra keys, a shape or dtype other than the reference's, or a NaN/Inf value, or if
its update (reply minus the weights it was sent) is larger than `max-update-norm`.
Each rejection names its reason as a short, countable kind and a readable detail.

Why beyond Flower's `validate_message_reply_consistency`: it checks that replies carry
the expected records and weighting key and raises on the first bad one; these checks
look inside the arrays and reject one reply with a reason while the round goes on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from strategies.aggregation import difference, global_norm
from strategies.arrays import Arrays

UNSOLICITED = "unsolicited"
NO_ARRAYS = "no-arrays"
MISSING = "missing-arrays"
UNEXPECTED = "unexpected-arrays"
SHAPE = "shape"
DTYPE = "dtype"
NON_FINITE = "non-finite"
NORM = "norm"


@dataclass(frozen=True)
class Rejection:
    """Why a reply is not aggregated: `kind` (one of this module's constants) and a detail."""

    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


def structure_problem(reply: Arrays, reference: Arrays) -> Rejection | None:
    """Why `reply` does not have `reference`'s keys, shapes, dtypes and finite values; None if fine."""
    missing = [key for key in reference if key not in reply]
    if missing:
        return Rejection(MISSING, f"missing arrays {missing[:3]}")
    extra = [key for key in reply if key not in reference]
    if extra:
        return Rejection(UNEXPECTED, f"unexpected arrays {extra[:3]}")
    for key, expected in reference.items():
        value = reply[key]
        if value.shape != expected.shape:
            return Rejection(SHAPE, f"array {key!r} has shape {value.shape}, expected {expected.shape}")
        if value.dtype != expected.dtype:
            return Rejection(DTYPE, f"array {key!r} has dtype {value.dtype}, expected {expected.dtype}")
        if not np.all(np.isfinite(value)):
            return Rejection(NON_FINITE, f"array {key!r} contains NaN or Inf")
    return None


def weights_problem(reply: Arrays, sent: Arrays, max_norm: float) -> Rejection | None:
    """Why returned weights `reply` must not be aggregated, checked against the `sent` weights.

    Beyond the structure, the update (reply minus sent) must have an L2 norm of at most
    `max_norm` over its floating-point arrays (BatchNorm's step counters are no
    parameters); 0 leaves it unbounded, and the update (a copy of the model) is then not computed.
    """
    problem = structure_problem(reply, sent)
    if problem is not None or max_norm <= 0:
        return problem
    norm = global_norm(difference(reply, sent))
    if norm > max_norm:
        return Rejection(NORM, f"update norm {norm:.4g} exceeds max-update-norm {max_norm:.4g}")
    return None
