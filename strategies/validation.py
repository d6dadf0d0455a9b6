"""Checks a client's reply before it may be aggregated (a bug or an attack must not get in).

Pure functions on NumPy dicts: a reply is rejected if its arrays have missing or
extra keys, a shape or dtype other than the reference's, or a NaN/Inf value, or if
its update is larger than the configured bound.
"""

from __future__ import annotations

import numpy as np

from strategies.aggregation import global_norm
from strategies.arrays import Arrays


def structure_problem(reply: Arrays, reference: Arrays) -> str | None:
    """Why `reply` does not have `reference`'s keys, shapes, dtypes and finite values; None if fine."""
    missing = [key for key in reference if key not in reply]
    if missing:
        return f"missing arrays {missing[:3]}"
    extra = [key for key in reply if key not in reference]
    if extra:
        return f"unexpected arrays {extra[:3]}"
    for key, expected in reference.items():
        value = reply[key]
        if value.shape != expected.shape:
            return f"array {key!r} has shape {value.shape}, expected {expected.shape}"
        if value.dtype != expected.dtype:
            return f"array {key!r} has dtype {value.dtype}, expected {expected.dtype}"
        if not np.all(np.isfinite(value)):
            return f"array {key!r} contains NaN or Inf"
    return None


def norm_problem(update: Arrays, max_norm: float) -> str | None:
    """Why `update` is too large (L2 norm above `max_norm`); None if within bounds or unbounded."""
    if max_norm <= 0:
        return None
    norm = global_norm(update)
    if norm > max_norm:
        return f"update norm {norm:.4g} exceeds max-update-norm {max_norm:.4g}"
    return None
