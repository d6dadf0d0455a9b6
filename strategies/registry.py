"""The strategy registry: every name `-c strategy=...` accepts, mapped to a factory.

A factory takes the validated `RunConfig` and returns a Flower `Strategy`. The
registry is also the list of allowed names that config validation reports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flwr.serverapp.strategy import Strategy

from strategies.fedavg import FedAvg

if TYPE_CHECKING:
    from fedapp.config import RunConfig


@dataclass(frozen=True)
class StrategySpec:
    """How to build a strategy, and what it is."""

    build: Callable[[RunConfig], Strategy]
    description: str


def sampling_kwargs(config: RunConfig) -> dict[str, Any]:
    """Flower's node-sampling arguments, shared by every strategy."""
    return {
        "fraction_train": config.fraction_train,
        "fraction_evaluate": config.fraction_evaluate,
        "min_train_nodes": config.min_train_nodes,
        "min_evaluate_nodes": 1,
        "min_available_nodes": config.min_available_nodes,
    }


def _fedavg(config: RunConfig) -> Strategy:
    return FedAvg(weighting=config.weighting, **sampling_kwargs(config))


STRATEGIES: dict[str, StrategySpec] = {
    "fedavg": StrategySpec(_fedavg, "FedAvg (McMahan et al. 2017): weighted average of client models"),
}
