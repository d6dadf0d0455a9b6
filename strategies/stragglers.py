"""Systems heterogeneity as in the FedProx paper (Li et al. 2020, section 5.2).

A fraction of the sampled clients are stragglers: they manage only part of the
local work, a number of epochs drawn uniformly from [1, local-epochs). FedAvg drops
their updates (it waits for full work only); FedProx aggregates the partial work.
"""

from __future__ import annotations

import numpy as np


def choose_stragglers(
    node_ids: list[int], fraction: float, local_epochs: int, rng: np.random.Generator
) -> dict[int, int]:
    """Pick round(fraction * len(node_ids)) stragglers; map each to its reduced epoch count.

    `node_ids` must be in a reproducible order (they are, as sampled by fedapp);
    the choice then depends only on `rng`.
    """
    count = round(fraction * len(node_ids))
    if count == 0 or local_epochs < 2:
        return {}
    chosen = rng.choice(len(node_ids), size=count, replace=False)
    return {node_ids[i]: int(rng.integers(1, local_epochs)) for i in sorted(chosen)}
