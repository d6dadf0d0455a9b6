"""Screens that judge a reply against the rest of its round: bounded claims and norm outliers.

`validation.py` checks each reply's arrays on its own (structure, finite values, a fixed
`max-update-norm`); `claim_problem` checks its claimed `num-examples` (a finite whole
number >= 1: a claim of -1e9 once ended the whole run). A hostile or broken node can pass those and still take over a
round: by claiming far more examples than anyone else (weighted FedAvg gives it almost
all the weight) or by sending an update many times larger than the others'. These
screens need no user threshold because they compare with the round's median, which a
minority of faulty nodes cannot move far:

- a claim of examples is capped at `ratio` x the round's median claim (the node keeps
  its reply, with a bounded weight);
- an update whose L2 norm exceeds `ratio` x the round's median norm is rejected.

Both need at least `MIN_REPLIES` replies: with two, neither can be told from the other.
They are pure functions on numbers; `fedapp.federation` applies them to a round's replies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from strategies.validation import Rejection

MIN_REPLIES = 3
CLAIM = "num-examples"
NORM_OUTLIER = "norm-outlier"


def claim_problem(value: object) -> Rejection | None:
    """Why `value` is not an acceptable `num-examples` claim of a training reply; None if it is.

    A claim must be a finite whole number of at least 1: a reply that trained on no
    example has nothing to add, and a round whose claims summed to 0 (or less) would
    leave weighted averaging undefined.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return Rejection(CLAIM, f"num-examples must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        return Rejection(CLAIM, f"num-examples must be finite, got {value}")
    if value < 1 or value != int(value):
        return Rejection(CLAIM, f"num-examples must be a whole number >= 1 (no examples, no update), got {value:g}")
    return None


def capped_claims(claims: Sequence[float], ratio: float) -> list[float]:
    """Each claim, capped at `ratio` x the median claim; unchanged when `ratio` is 0 or too few claims."""
    if ratio <= 0 or len(claims) < MIN_REPLIES:
        return [float(claim) for claim in claims]
    cap = ratio * float(np.median(claims))
    return [min(float(claim), cap) for claim in claims]


def norm_outliers(norms: Sequence[float], ratio: float) -> list[Rejection | None]:
    """Per norm, a rejection when it exceeds `ratio` x the round's median norm (off when `ratio` is 0)."""
    if ratio <= 0 or len(norms) < MIN_REPLIES:
        return [None] * len(norms)
    median = float(np.median(norms))
    bound = ratio * median
    return [
        Rejection(
            NORM_OUTLIER,
            f"update norm {norm:.4g} exceeds outlier-norm-ratio {ratio:g} x the round's median norm {median:.4g}",
        )
        if norm > bound
        else None
        for norm in norms
    ]
