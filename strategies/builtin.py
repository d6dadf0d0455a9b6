"""Flower's own strategies, selectable by name beside ours, and their answers to the federation loop.

They run with Flower's default hyperparameters (e.g. FedAdam eta=0.1, tau=1e-3;
FedTrimmedAvg beta=0.2; Krum with no assumed malicious nodes). Flower's FedOpt
strategies (FedAdam, FedYogi, FedAdagrad) keep their moments in `m_t` and `v_t`,
which `hooks_for` checkpoints; FedMedian, FedTrimmedAvg and Krum keep no state.
"""

from __future__ import annotations

from typing import Any

from flwr.serverapp.strategy import FedAdagrad, FedAdam, FedMedian, FedTrimmedAvg, FedYogi, Krum, Strategy
from flwr.serverapp.strategy.fedopt import FedOpt

from strategies.hooks import FederationHooks

BUILTINS: dict[str, type[Strategy]] = {
    "fedadam": FedAdam,
    "fedyogi": FedYogi,
    "fedadagrad": FedAdagrad,
    "fedmedian": FedMedian,
    "fedtrimmedavg": FedTrimmedAvg,
    "krum": Krum,
}

FEDOPT_MOMENTS = ("m_t", "v_t")


class FedOptState(FederationHooks):
    """Checkpoints a Flower FedOpt strategy's first and second moments."""

    def __init__(self, strategy: FedOpt) -> None:
        self.strategy = strategy

    def state_dict(self) -> dict[str, Any]:
        """The moments `m_t` and `v_t` (None before the first aggregation)."""
        return {name: getattr(self.strategy, name) for name in FEDOPT_MOMENTS}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put saved moments back into the strategy."""
        for name in FEDOPT_MOMENTS:
            setattr(self.strategy, name, state[name])


def hooks_for(strategy: Strategy) -> FederationHooks:
    """The federation loop's view of `strategy`: itself if it declares the hooks, else an adapter."""
    if isinstance(strategy, FederationHooks):
        return strategy
    if isinstance(strategy, FedOpt):
        return FedOptState(strategy)
    return FederationHooks()
