"""What a strategy carries from one round to the next, as plain data a checkpoint can hold.

A strategy with state between rounds implements `state_dict()` (returning nested
dicts and lists of numbers, strings, None and NumPy arrays) and `load_state_dict(state)`,
as fedapp's do: FedAvg's family (server optimizer momentum, DP privacy ledger) and
federated distillation (the consensus soft labels). Flower's FedOpt strategies
(FedAdam, FedYogi, FedAdagrad) keep their moments in `m_t` and `v_t`, which are
read and restored here; Flower's FedMedian, FedTrimmedAvg and Krum keep no state.
Whatever a strategy recomputes in `configure_train` (the round's global arrays) is
not state.
"""

from __future__ import annotations

from typing import Any

from flwr.serverapp.strategy import Strategy
from flwr.serverapp.strategy.fedopt import FedOpt

FLOWER_FEDOPT_MOMENTS = ("m_t", "v_t")


def strategy_state(strategy: Strategy) -> dict[str, Any]:
    """The strategy's state between rounds (empty for a stateless strategy)."""
    if hasattr(strategy, "state_dict"):
        return strategy.state_dict()
    if isinstance(strategy, FedOpt):
        return {name: getattr(strategy, name) for name in FLOWER_FEDOPT_MOMENTS}
    return {}


def load_strategy_state(strategy: Strategy, state: dict[str, Any]) -> None:
    """Restore what `strategy_state` returned into a freshly built strategy of the same kind."""
    if hasattr(strategy, "load_state_dict"):
        strategy.load_state_dict(state)
    elif isinstance(strategy, FedOpt):
        for name in FLOWER_FEDOPT_MOMENTS:
            setattr(strategy, name, state[name])
