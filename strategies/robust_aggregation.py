"""Byzantine-robust aggregation of client updates (w_k - w) as pure functions on `name -> ndarray` dicts.

`robust_average(updates, weights, rule)` replaces `aggregation.weighted_average` in the
averaging strategies; the strategy then applies the result through its server optimizer
as before. The rules (`AggregationRule.name`):

- `mean`: the weighted average (`weighted_average`), FedAvg's rule (McMahan et al. 2017);
- `median`: the coordinate-wise median (Yin, Chen, Ramchandran, Bartlett 2018, "Byzantine-Robust
  Distributed Learning: Towards Optimal Statistical Rates", Option I);
- `trimmed-mean`: per coordinate, drop the k = floor(beta * n) largest and k smallest values and
  average the rest (Yin et al. 2018, Option II; beta = `trim_fraction`);
- `krum` / `multi-krum`: score each update by the summed squared distances to its n - f - 2 nearest
  other updates; Krum returns the best-scored update, Multi-Krum averages the m best (Blanchard,
  El Mhamdi, Guerraoui, Stainer 2017; f = `byzantine`, m = `selected`); needs n > 2f + 2;
- `bulyan`: take the theta = n - 2f best Krum scores, then per coordinate average the
  theta - 2f selected values closest to their median (El Mhamdi, Guerraoui, Rouault 2018); needs n > 4f + 2;
- `centered-clipping`: v <- v + (1/n) sum_i clip_tau(x_i - v), L times, from a reference v_0
  (the previous round's aggregate, or zero) (Karimireddy, He, Jaggi 2021, "Learning from History
  for Byzantine Robust Optimization"; tau = `centered_clipping_tau`, L = `centered_clipping_iterations`).

How the weights enter: `mean` uses them; Multi-Krum averages its m selected updates with them
(a convex combination of selected updates keeps Krum's bound; uniform weights give the paper's
rule, example counts give Flower's `MultiKrum`). The median, trimmed mean, Krum's scores, Bulyan
and centered clipping ignore them, as in their papers: a weight is the client's own claim, and a
weighted robust rule would let one client that claims many examples decide the result.

Only floating-point arrays are aggregated robustly. Integer arrays (BatchNorm's
`num_batches_tracked`, see `aggregation.is_parameter`) are step counters, not parameters: they are
taken from the plain weighted mean, as with `mean`. Krum's distances and centered clipping's norms
cover the floating-point arrays only, like `global_norm`.

Where we differ from Flower, and why we re-implement each rule instead of using its class:
- all: Flower's `FedMedian`, `FedTrimmedAvg`, `Krum`, `MultiKrum` and `Bulyan` are whole strategies
  (Flower FedAvg subclasses) that aggregate whole models; ours aggregate updates, so they compose with
  our server optimizer, FedProx, FedNova, reply screening, stragglers and outputs. The median, trimmed
  mean and Krum's selection are translation-equivariant, so both agree up to float rounding;
- median: no difference in definition (Flower's `FedMedian` takes np.median of the stacked weights);
- trimmed mean: k = floor(beta * n), as Flower's `trim_mean` and scipy's (so beta * n < 1 trims nothing);
- Krum: the paper's n - f - 2 neighbours; Flower takes max(1, n - f - 2) and so also runs when
  n <= 2f + 2, where the guarantee does not hold: we refuse those n. Flower measures the distances
  over all arrays in their own dtype and skips each update's own distance by its sorted position;
  we measure floating-point arrays in float64 and exclude the diagonal explicitly;
- Bulyan: selects by one Multi-Krum scoring of all n updates, as Flower's `Bulyan` does; the paper
  re-runs Krum on the shrinking remaining set, whose last rounds have fewer than f + 1 neighbours;
- centered clipping: Flower has none.

Memory: every rule but `mean` needs all n updates at once. Each array is processed in column
blocks of at most `BLOCK_ENTRIES` float64 values (n x width), so the extra memory stays bounded
for 100 replies of a 1.6M-parameter CNN; Krum's pairwise distances come from the Gram matrix
of the updates, accumulated block by block (one matrix product each).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from strategies.aggregation import is_parameter, weighted_average
from strategies.arrays import Arrays

__all__ = [
    "BULYAN",
    "CENTERED_CLIPPING",
    "KRUM",
    "MEAN",
    "MEDIAN",
    "MULTI_KRUM",
    "RULES",
    "TRIMMED_MEAN",
    "AggregationRule",
    "krum_scores",
    "robust_average",
    "squared_distances",
]

MEAN = "mean"
MEDIAN = "median"
TRIMMED_MEAN = "trimmed-mean"
KRUM = "krum"
MULTI_KRUM = "multi-krum"
BULYAN = "bulyan"
CENTERED_CLIPPING = "centered-clipping"
RULES = (MEAN, MEDIAN, TRIMMED_MEAN, KRUM, MULTI_KRUM, BULYAN, CENTERED_CLIPPING)

BLOCK_ENTRIES = 1 << 22  # float64 values per stacked block: 32 MiB

Block = np.ndarray  # an (n x width) float64 slice of the stacked, flattened updates of one array


@dataclass(frozen=True)
class AggregationRule:
    """Which robust rule aggregates the updates, and its settings; validated when made.

    `trim_fraction` is read by `trimmed-mean`, `byzantine` (f) by the Krum rules and Bulyan,
    `selected` (m, at most n - f) by `multi-krum` only (`krum` is Multi-Krum with m = 1), and the
    `centered_clipping_*` settings by `centered-clipping`.

    Examples
    --------
    >>> AggregationRule(TRIMMED_MEAN, trim_fraction=0.2).min_replies
    1
    >>> AggregationRule(KRUM, byzantine=2).min_replies
    7
    """

    name: str = MEAN
    trim_fraction: float = 0.1
    byzantine: int = 0
    selected: int = 1
    centered_clipping_tau: float = 1.0
    centered_clipping_iterations: int = 1

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise a one-line `ValueError` naming the first bad setting and what is allowed."""
        checks: dict[str, tuple[Callable[[Any], bool], str]] = {
            "name": (lambda v: v in RULES, ", ".join(RULES)),
            "trim_fraction": (lambda v: _is_number(v) and 0 <= v < 0.5, "a number in [0, 0.5)"),
            "byzantine": (lambda v: _is_integer(v) and v >= 0, "an integer >= 0"),
            "selected": (lambda v: _is_integer(v) and v >= 1, "an integer >= 1"),
            "centered_clipping_tau": (lambda v: _is_number(v) and 0 < v < math.inf, "a finite number > 0"),
            "centered_clipping_iterations": (lambda v: _is_integer(v) and v >= 1, "an integer >= 1"),
        }
        for field in fields(self):
            valid, allowed = checks[field.name]
            value = getattr(self, field.name)
            if not valid(value):
                raise ValueError(f"aggregation setting '{setting_key(field.name)}' = {value!r}; allowed: {allowed}")

    @property
    def min_replies(self) -> int:
        """The fewest updates the rule's guarantee holds for (n > 2f + 2 for Krum, n > 4f + 2 for Bulyan)."""
        f = self.byzantine
        if self.name == KRUM:
            return 2 * f + 3
        if self.name == MULTI_KRUM:
            return max(2 * f + 3, self.selected + f)
        if self.name == BULYAN:
            return 4 * f + 3
        return 1

    def check_replies(self, count: int) -> None:
        """Raise a one-line `ValueError` if `count` updates are too few for the rule's guarantee."""
        if count < self.min_replies:
            raise ValueError(
                f"aggregation '{self.name}' with byzantine = {self.byzantine}"
                f"{f' and selected = {self.selected}' if self.name == MULTI_KRUM else ''} needs at least "
                f"{self.min_replies} replies, got {count}; allowed: fewer byzantine (or selected) or more clients"
            )

    def describe(self) -> str:
        """The rule and the settings it reads, for logs (e.g. `krum (byzantine=2)`)."""
        read = {
            TRIMMED_MEAN: ("trim_fraction",),
            KRUM: ("byzantine",),
            MULTI_KRUM: ("byzantine", "selected"),
            BULYAN: ("byzantine",),
            CENTERED_CLIPPING: ("centered_clipping_tau", "centered_clipping_iterations"),
        }.get(self.name, ())
        settings = ", ".join(f"{name}={getattr(self, name)}" for name in read)
        return f"{self.name} ({settings})" if settings else self.name

    def privacy_problem(self) -> str | None:
        """Why this rule cannot run under DP-FedAvg's accounting (one line), or None for `mean`.

        DP-FedAvg calibrates its noise to the sensitivity of the clipped, fixed-denominator
        mean (C / m); a robust rule's output moves differently when one client changes, so
        the noise would no longer bound the privacy loss the accountant reports.
        """
        if self.name == MEAN:
            return None
        return (
            f"aggregation '{self.name}' cannot be combined with dp: the DP noise is calibrated to the "
            f"clipped mean's sensitivity, which '{self.name}' does not have; allowed with dp: {MEAN}"
        )


def setting_key(field_name: str) -> str:
    """The run-config key of an `AggregationRule` field: `aggregation` for the name, else `aggregation-<field>`."""
    return "aggregation" if field_name == "name" else "aggregation-" + field_name.replace("_", "-")


def robust_average(
    updates: Sequence[Arrays], weights: Sequence[float], rule: AggregationRule, reference: Arrays | None = None
) -> Arrays:
    """Aggregate client updates with `rule`; keys, shapes and dtypes as in the first update.

    Parameters
    ----------
    updates : Sequence[Arrays]
        Each client's change to the global weights, w_k - w (all held: robust rules compare them).
    weights : Sequence[float]
        One per update; used by `mean` and Multi-Krum's average, and for the integer arrays.
    rule : AggregationRule
        The rule and its settings.
    reference : Arrays | None
        Centered clipping's starting point v_0 (the previous round's aggregate update); None is zero.

    Returns
    -------
    Arrays
        The aggregate update, each array cast back to its dtype.
    """
    if len(updates) != len(weights):
        raise ValueError(f"got {len(updates)} updates but {len(weights)} weights")
    if not updates:
        raise ValueError("robust_average needs at least one update")
    rule.check_replies(len(updates))
    if rule.name == MEAN:
        return weighted_average(updates, weights)
    keys = [key for key, value in updates[0].items() if is_parameter(value)]
    aggregate = _robust_parameters(updates, weights, keys, rule, reference)
    counters = [key for key in updates[0] if key not in aggregate]
    if counters:
        aggregate.update(weighted_average([{key: update[key] for key in counters} for update in updates], weights))
    return {key: aggregate[key] for key in updates[0]}


def _robust_parameters(
    updates: Sequence[Arrays],
    weights: Sequence[float],
    keys: list[str],
    rule: AggregationRule,
    reference: Arrays | None,
) -> Arrays:
    """The rule's aggregate of the floating-point arrays `keys`."""
    f = rule.byzantine
    if rule.name == MEDIAN:
        return _coordinatewise(updates, keys, lambda block: np.median(block, axis=0))
    if rule.name == TRIMMED_MEAN:
        return _coordinatewise(updates, keys, lambda block: _trimmed_mean(block, rule.trim_fraction))
    if rule.name in (KRUM, MULTI_KRUM):
        chosen = _best_scored(updates, keys, f, 1 if rule.name == KRUM else rule.selected)
        return weighted_average([{key: updates[i][key] for key in keys} for i in chosen], [weights[i] for i in chosen])
    if rule.name == BULYAN:
        selected = [updates[i] for i in _best_scored(updates, keys, f, len(updates) - 2 * f)]
        closest = len(selected) - 2 * f
        return _coordinatewise(selected, keys, lambda block: _mean_closest_to_median(block, closest))
    return _centered_clipping(updates, keys, rule.centered_clipping_tau, rule.centered_clipping_iterations, reference)


def _column_blocks(updates: Sequence[Arrays], key: str) -> Iterator[tuple[slice, Block]]:
    """The updates' `key` arrays, flattened and stacked (n x size) in float64, in column blocks."""
    flat = [np.ravel(update[key]) for update in updates]
    size = flat[0].size
    width = max(1, BLOCK_ENTRIES // len(flat))
    for start in range(0, size, width):
        columns = slice(start, min(start + width, size))
        yield columns, np.stack([values[columns] for values in flat], dtype=np.float64)


def _coordinatewise(updates: Sequence[Arrays], keys: list[str], reduce: Callable[[Block], np.ndarray]) -> Arrays:
    """Apply `reduce` (n x width -> width) to every coordinate's n values, array by array."""
    aggregate: Arrays = {}
    for key in keys:
        first = updates[0][key]
        flat = np.empty(first.size, dtype=np.float64)
        for columns, block in _column_blocks(updates, key):
            flat[columns] = reduce(block)
        aggregate[key] = flat.reshape(first.shape).astype(first.dtype)
    return aggregate


def _trimmed_mean(block: Block, trim_fraction: float) -> np.ndarray:
    """Per column, the mean of the values left after dropping the k = floor(beta * n) lowest and highest."""
    count = block.shape[0]
    cut = int(trim_fraction * count)
    if cut == 0:
        return block.mean(axis=0)
    ordered = np.partition(block, (cut, count - cut - 1), axis=0)
    return ordered[cut : count - cut].mean(axis=0)


def _mean_closest_to_median(block: Block, count: int) -> np.ndarray:
    """Per column, the mean of the `count` values closest to the column's median (Bulyan's second step)."""
    distance = np.abs(block - np.median(block, axis=0))
    nearest = np.argpartition(distance, count - 1, axis=0)[:count]
    return np.take_along_axis(block, nearest, axis=0).mean(axis=0)


def squared_distances(updates: Sequence[Arrays], keys: Sequence[str]) -> np.ndarray:
    """The n x n squared L2 distances between the updates' `keys` arrays taken as one vector.

    ||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b from the Gram matrix, one matrix product per block
    instead of n^2 vector differences; updates are small (w_k - w), so little cancels.
    """
    gram = np.zeros((len(updates), len(updates)))
    for key in keys:
        for _, block in _column_blocks(updates, key):
            gram += block @ block.T
    norms = np.diag(gram)
    return np.maximum(norms[:, None] + norms[None, :] - 2 * gram, 0.0)


def krum_scores(distances: np.ndarray, byzantine: int) -> np.ndarray:
    """Krum's score of each update: the sum of its squared distances to its n - f - 2 nearest others."""
    neighbours = len(distances) - byzantine - 2
    others = distances + np.diag(np.full(len(distances), np.inf))
    return np.partition(others, neighbours - 1, axis=1)[:, :neighbours].sum(axis=1)


def _best_scored(updates: Sequence[Arrays], keys: list[str], byzantine: int, count: int) -> list[int]:
    """Indices of the `count` updates with the lowest Krum scores, best first (ties: the earlier update)."""
    scores = krum_scores(squared_distances(updates, keys), byzantine)
    return [int(i) for i in np.argsort(scores, kind="stable")[:count]]


def _centered_clipping(
    updates: Sequence[Arrays], keys: list[str], tau: float, iterations: int, reference: Arrays | None
) -> Arrays:
    """Karimireddy et al.'s v <- v + (1/n) sum_i clip_tau(x_i - v), `iterations` times from `reference`.

    clip_tau(d) = d * min(1, tau / ||d||) with ||d|| over all floating-point arrays together.
    """
    center = {
        key: np.zeros(updates[0][key].size) if reference is None else np.ravel(reference[key]).astype(np.float64)
        for key in keys
    }
    count = len(updates)
    for _ in range(iterations):
        squared = np.zeros(count)
        for key in keys:
            for columns, block in _column_blocks(updates, key):
                squared += np.sum(np.square(block - center[key][columns]), axis=1)
        norms = np.sqrt(squared)
        scale = np.divide(tau, norms, out=np.ones(count), where=norms > tau) / count
        for key in keys:
            step = np.empty_like(center[key])
            for columns, block in _column_blocks(updates, key):
                step[columns] = scale @ (block - center[key][columns])
            center[key] += step
    return {key: center[key].reshape(updates[0][key].shape).astype(updates[0][key].dtype) for key in keys}


def _is_number(value: object) -> bool:
    """A real number (int or float, not bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_integer(value: object) -> bool:
    """An int (not bool)."""
    return isinstance(value, int) and not isinstance(value, bool)
