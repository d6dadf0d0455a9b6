"""The numbers a comparison reports, as pure functions of runs' per-round records.

A run's records are its `metrics.json` rounds: round 0 is the initial model, each
later record has the central (held-out test) metrics and the training traffic of
that round (`bytes_up`, `bytes_down`). A comparison ranks runs by the task's metric
(`Metric`): central accuracy for classification, central R² for regression (higher
is better for both; R² is scale-free, so one `--target` means the same for any
table), and reports a regression's RMSE and MAE beside it. From the records:

- rounds to target: the first round whose metric reaches the target. The FedAvg
  paper counts rounds on the best-so-far accuracy curve, which first reaches the
  target at exactly this round;
- traffic to target: the bytes sent up and down in rounds 1 to that round;
- personalised accuracy: the spread (mean, min, max over the evaluated nodes) of each
  node's own model's accuracy on its validation split in the last round that has it
  (FedBN's and Ditto's personal models; the global model for the other strategies),
  when the runs evaluate on nodes (`fraction-evaluate` > 0);
- upload per client per round: the bytes a client sends back in one training round,
  averaged over every reply of the run;
- client models (federated distillation, where clients keep their own models): the
  mean over clients of their models' test accuracy after the last round, and the best
  such round;
- privacy spent: the epsilon of the last round that reports one (DP runs);
- one summary row per strategy: mean and sample standard deviation over its seeds'
  completed runs (no deviation with a single run); failed runs are counted, never
  averaged in.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fedapp.choices import CLASSIFICATION, REGRESSION

MEGABYTE = 1e6
COMPLETED = "completed"


@dataclass(frozen=True)
class Metric:
    """What a comparison ranks by: the record key, its name in column names, its label, and extra final metrics."""

    key: str
    name: str
    label: str
    extras: tuple[str, ...] = ()


ACCURACY = Metric("central_accuracy", "accuracy", "accuracy")
R2 = Metric("central_r2", "r2", "R²", extras=("rmse", "mae"))
METRIC_OF_TASK = {CLASSIFICATION: ACCURACY, REGRESSION: R2}


def columns(metric: Metric) -> tuple[str, ...]:
    """The summary columns for `metric` (`COLUMNS` for accuracy).

    The personalised and client-model accuracy columns stay in a regression's summary,
    empty: they are a classification's (`personalized_accuracy_*`, FD/FedMD's client models).
    """
    name = metric.name
    extras = tuple(f"final_{extra}_{stat}" for extra in metric.extras for stat in ("mean", "std"))
    return (
        "strategy",
        "runs",
        "failed",
        f"final_{name}_mean",
        f"final_{name}_std",
        f"best_{name}_mean",
        f"best_{name}_std",
        *extras,
        *_ACCURACY_SPREAD_COLUMNS,
        f"target_{name}",
        *_TRAFFIC_COLUMNS,
    )


_ACCURACY_SPREAD_COLUMNS = (
    "personalized_accuracy_mean",
    "personalized_accuracy_std",
    "personalized_accuracy_min",
    "personalized_accuracy_max",
    "client_accuracy_final_mean",
    "client_accuracy_final_std",
    "client_accuracy_best_mean",
    "client_accuracy_best_std",
)
_TRAFFIC_COLUMNS = (
    "reached_target",
    "rounds_to_target_mean",
    "rounds_to_target_std",
    "mb_up_to_target",
    "mb_down_to_target",
    "total_mb_up",
    "total_mb_down",
    "total_mb",
    "upload_bytes_per_client_round",
    "wall_seconds_mean",
    "final_epsilon_mean",
)
COLUMNS = columns(ACCURACY)

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


def final_value(rounds: Rounds, key: str = ACCURACY.key) -> float:
    """Metric `key` (central accuracy by default) after the last round."""
    return _number(rounds[-1].get(key))


def best_value(rounds: Rounds, key: str = ACCURACY.key) -> float:
    """Highest value of metric `key` of any round."""
    return max(_number(r.get(key)) for r in rounds)


def final_personalized_accuracy(rounds: Rounds) -> tuple[float, float, float] | None:
    """(mean, min, max) of the nodes' own models' accuracy in the last round that has it, or None."""
    last = next((r for r in reversed(rounds) if r.get("personalized_accuracy_mean") is not None), None)
    if last is None:
        return None
    return (
        float(last["personalized_accuracy_mean"]),
        float(last["personalized_accuracy_min"]),
        float(last["personalized_accuracy_max"]),
    )


def client_accuracies(rounds: Rounds) -> list[float]:
    """The clients' own models' mean test accuracy per round, for runs that report it (else empty)."""
    return [float(r["client_accuracy_mean"]) for r in rounds if r.get("client_accuracy_mean") is not None]


def upload_per_client_round(rounds: Rounds) -> float | None:
    """Bytes a client sent back per training round, over every reply of the run (None without replies)."""
    trained = [r for r in rounds if r["round"] >= 1]
    replies = sum(int(r.get("nodes_replied", 0)) for r in trained)
    return sum(int(r.get("bytes_up", 0)) for r in trained) / replies if replies else None


def final_epsilon(rounds: Rounds) -> float | None:
    """The cumulative epsilon after the last round that reports one, or None for a run without DP."""
    spent = [float(r["epsilon"]) for r in rounds if r.get("epsilon") is not None]
    return spent[-1] if spent else None


def _number(value: Any) -> float:
    """A metric as a float; a missing one (R² of constant targets) as -inf, below any target."""
    return float(value) if value is not None else -math.inf


def rounds_to_target(rounds: Rounds, target: float, key: str = ACCURACY.key) -> int | None:
    """The first round whose metric `key` is >= `target`, or None if none is."""
    return next((int(r["round"]) for r in rounds if _number(r.get(key)) >= target), None)


def traffic_through(rounds: Rounds, last_round: int) -> tuple[int, int]:
    """(bytes up, bytes down) of training summed over rounds 1 to `last_round`."""
    included = [r for r in rounds if 1 <= r["round"] <= last_round]
    return sum(int(r.get("bytes_up", 0)) for r in included), sum(int(r.get("bytes_down", 0)) for r in included)


def traffic_to_target(rounds: Rounds, target: float, key: str = ACCURACY.key) -> tuple[int, int] | None:
    """(bytes up, bytes down) sent until the target was first reached, or None if it never was."""
    reached = rounds_to_target(rounds, target, key)
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


def summarize(label: str, results: Sequence[RunResult], target: float, metric: Metric = ACCURACY) -> dict[str, Any]:
    """One summary row (keys `columns(metric)`) for strategy `label` from its runs over seeds."""
    done = [r for r in results if r.completed and r.rounds]
    finals = mean_std([final_value(r.rounds, metric.key) for r in done])
    bests = mean_std([best_value(r.rounds, metric.key) for r in done])
    extras = {}
    for extra in metric.extras:
        mean, std = mean_std([final_value(r.rounds, f"central_{extra}") for r in done])
        extras |= {f"final_{extra}_mean": mean, f"final_{extra}_std": std}
    spreads = [spread for spread in (final_personalized_accuracy(r.rounds) for r in done) if spread is not None]
    personal = mean_std([mean for mean, _, _ in spreads])
    reached = [
        (rounds_to_target(r.rounds, target, metric.key), traffic_to_target(r.rounds, target, metric.key)) for r in done
    ]
    reached = [(n, traffic) for n, traffic in reached if n is not None and traffic is not None]
    rounds_needed = mean_std([n for n, _ in reached])
    totals = [total_traffic(r.rounds) for r in done]
    clients = [client_accuracies(r.rounds) for r in done]
    client_finals = mean_std([values[-1] for values in clients if values])
    client_bests = mean_std([max(values) for values in clients if values])
    uploads = [u for u in (upload_per_client_round(r.rounds) for r in done) if u is not None]
    epsilons = [e for e in (final_epsilon(r.rounds) for r in done) if e is not None]
    return {
        "strategy": label,
        "runs": len(results),
        "failed": len(results) - len(done),
        f"final_{metric.name}_mean": finals[0],
        f"final_{metric.name}_std": finals[1],
        f"best_{metric.name}_mean": bests[0],
        f"best_{metric.name}_std": bests[1],
        **extras,
        "personalized_accuracy_mean": personal[0],
        "personalized_accuracy_std": personal[1],
        "personalized_accuracy_min": mean_std([low for _, low, _ in spreads])[0],
        "personalized_accuracy_max": mean_std([high for _, _, high in spreads])[0],
        "client_accuracy_final_mean": client_finals[0],
        "client_accuracy_final_std": client_finals[1],
        "client_accuracy_best_mean": client_bests[0],
        "client_accuracy_best_std": client_bests[1],
        f"target_{metric.name}": target,
        "reached_target": len(reached),
        "rounds_to_target_mean": rounds_needed[0],
        "rounds_to_target_std": rounds_needed[1],
        "mb_up_to_target": _mean_mb([up for _, (up, _) in reached]),
        "mb_down_to_target": _mean_mb([down for _, (_, down) in reached]),
        "total_mb_up": _mean_mb([up for up, _ in totals]),
        "total_mb_down": _mean_mb([down for _, down in totals]),
        "total_mb": _mean_mb([up + down for up, down in totals]),
        "upload_bytes_per_client_round": mean_std(uploads)[0],
        "wall_seconds_mean": mean_std([r.seconds for r in done])[0],
        "final_epsilon_mean": mean_std(epsilons)[0],
    }


def _mean_mb(byte_counts: Sequence[int]) -> float | None:
    """Mean of `byte_counts` in megabytes (10^6 bytes), or None for no values."""
    return mean_std(byte_counts)[0] / MEGABYTE if byte_counts else None
