"""The numbers a comparison reports, as pure functions of runs' per-round records.

A run's records are its `metrics.json` rounds: round 0 is the initial model, each
later record has the central (held-out test) accuracy and the training traffic of
that round (`bytes_up`, `bytes_down`). From them:

- rounds to target: the first round whose central accuracy reaches the target. The
  FedAvg paper counts rounds on the best-so-far accuracy curve, which first reaches
  the target at exactly this round;
- traffic to target: the bytes sent up and down in rounds 1 to that round;
- privacy spent: the epsilon of the last round that reports one (DP runs);
- one summary row per strategy: mean and sample standard deviation over its seeds'
  completed runs (no deviation with a single run); failed runs are counted, never
  averaged in.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MEGABYTE = 1e6
COMPLETED = "completed"
COLUMNS = (
    "strategy",
    "runs",
    "failed",
    "final_accuracy_mean",
    "final_accuracy_std",
    "best_accuracy_mean",
    "best_accuracy_std",
    "target_accuracy",
    "reached_target",
    "rounds_to_target_mean",
    "rounds_to_target_std",
    "mb_up_to_target",
    "mb_down_to_target",
    "total_mb_up",
    "total_mb_down",
    "total_mb",
    "wall_seconds_mean",
    "final_epsilon_mean",
)

Rounds = Sequence[dict[str, Any]]


@dataclass(frozen=True)
class RunResult:
    """One run of a comparison: which strategy and seed, how it ended, its records and folder."""

    label: str
    seed: int
    status: str
    rounds: list[dict[str, Any]]
    seconds: float
    folder: str

    @property
    def completed(self) -> bool:
        return self.status == COMPLETED


def final_accuracy(rounds: Rounds) -> float:
    """Central accuracy after the last round."""
    return float(rounds[-1]["central_accuracy"])


def best_accuracy(rounds: Rounds) -> float:
    """Highest central accuracy of any round."""
    return max(float(r["central_accuracy"]) for r in rounds)


def final_epsilon(rounds: Rounds) -> float | None:
    """The cumulative epsilon after the last round that reports one, or None for a run without DP."""
    spent = [float(r["epsilon"]) for r in rounds if r.get("epsilon") is not None]
    return spent[-1] if spent else None


def rounds_to_target(rounds: Rounds, target: float) -> int | None:
    """The first round whose central accuracy is >= `target`, or None if none is."""
    return next((int(r["round"]) for r in rounds if r["central_accuracy"] >= target), None)


def traffic_through(rounds: Rounds, last_round: int) -> tuple[int, int]:
    """(bytes up, bytes down) of training summed over rounds 1 to `last_round`."""
    included = [r for r in rounds if 1 <= r["round"] <= last_round]
    return sum(int(r.get("bytes_up", 0)) for r in included), sum(int(r.get("bytes_down", 0)) for r in included)


def traffic_to_target(rounds: Rounds, target: float) -> tuple[int, int] | None:
    """(bytes up, bytes down) sent until the target was first reached, or None if it never was."""
    reached = rounds_to_target(rounds, target)
    return None if reached is None else traffic_through(rounds, reached)


def total_traffic(rounds: Rounds) -> tuple[int, int]:
    """(bytes up, bytes down) of training over the whole run."""
    return traffic_through(rounds, max(int(r["round"]) for r in rounds))


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """(mean, sample standard deviation) of `values`; None where there are too few values."""
    if not values:
        return None, None
    mean = statistics.fmean(values)
    return mean, statistics.stdev(values) if len(values) > 1 else None


def summarize(label: str, results: Sequence[RunResult], target: float) -> dict[str, Any]:
    """One summary row (keys `COLUMNS`) for strategy `label` from its runs over seeds."""
    done = [r for r in results if r.completed and r.rounds]
    finals = mean_std([final_accuracy(r.rounds) for r in done])
    bests = mean_std([best_accuracy(r.rounds) for r in done])
    reached = [(rounds_to_target(r.rounds, target), traffic_to_target(r.rounds, target)) for r in done]
    reached = [(n, traffic) for n, traffic in reached if n is not None and traffic is not None]
    rounds_needed = mean_std([n for n, _ in reached])
    totals = [total_traffic(r.rounds) for r in done]
    epsilons = [e for e in (final_epsilon(r.rounds) for r in done) if e is not None]
    return {
        "strategy": label,
        "runs": len(results),
        "failed": len(results) - len(done),
        "final_accuracy_mean": finals[0],
        "final_accuracy_std": finals[1],
        "best_accuracy_mean": bests[0],
        "best_accuracy_std": bests[1],
        "target_accuracy": target,
        "reached_target": len(reached),
        "rounds_to_target_mean": rounds_needed[0],
        "rounds_to_target_std": rounds_needed[1],
        "mb_up_to_target": _mean_mb([up for _, (up, _) in reached]),
        "mb_down_to_target": _mean_mb([down for _, (_, down) in reached]),
        "total_mb_up": _mean_mb([up for up, _ in totals]),
        "total_mb_down": _mean_mb([down for _, down in totals]),
        "total_mb": _mean_mb([up + down for up, down in totals]),
        "wall_seconds_mean": mean_std([r.seconds for r in done])[0],
        "final_epsilon_mean": mean_std(epsilons)[0],
    }


def _mean_mb(byte_counts: Sequence[int]) -> float | None:
    """Mean of `byte_counts` in megabytes (10^6 bytes), or None for no values."""
    return mean_std(byte_counts)[0] / MEGABYTE if byte_counts else None
