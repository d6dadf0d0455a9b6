"""The strategy registry: every name `-c strategy=...` accepts, mapped to a factory.

A factory takes the validated `RunConfig` and returns a Flower `Strategy`. The spec
also says what the strategy needs and allows, which config validation enforces: a
public set (distillation), stragglers (local epochs to cut short), DP (weight
averaging), client architectures other than the server's (logit exchange).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from flwr.serverapp.strategy import Strategy

from fedapp.data import dataset_shape
from fedapp.distillation import ServerDistiller
from strategies.builtin import BUILTINS
from strategies.dp import DifferentialPrivacy
from strategies.feddf import FedDF
from strategies.feddistill import FedDistill
from strategies.fedavg import FedAvg
from strategies.fedprox import FedProx
from strategies.fedsgd import FedSGD

if TYPE_CHECKING:
    from fedapp.config import RunConfig


@dataclass(frozen=True)
class StrategySpec:
    """How to build a strategy, what it is, and which settings it supports."""

    build: Callable[[RunConfig], Strategy]
    description: str
    uses_public_set: bool = False
    local_training: bool = True
    supports_dp: bool = False
    heterogeneous_clients: bool = False


def sampling_kwargs(config: RunConfig) -> dict[str, Any]:
    """Flower's node-sampling arguments, shared by every strategy."""
    return {
        "fraction_train": config.fraction_train,
        "fraction_evaluate": config.fraction_evaluate,
        "min_train_nodes": config.min_train_nodes,
        "min_evaluate_nodes": 1,
        "min_available_nodes": config.min_available_nodes,
    }


def _averaging_kwargs(config: RunConfig) -> dict[str, Any]:
    """The settings every fedapp weight-averaging strategy shares."""
    privacy = None
    if config.dp != "none":
        privacy = DifferentialPrivacy(config.dp, config.dp_clipping_norm, config.dp_noise_multiplier, config.dp_delta, config.seed)
    return {
        "weighting": config.weighting,
        "server_learning_rate": config.server_learning_rate,
        "server_momentum": config.server_momentum,
        "straggler_fraction": config.straggler_fraction,
        "seed": config.seed,
        "privacy": privacy,
        **sampling_kwargs(config),
    }


def _fedavg(config: RunConfig) -> Strategy:
    return FedAvg(**_averaging_kwargs(config))


def _fedprox(config: RunConfig) -> Strategy:
    return FedProx(proximal_mu=config.proximal_mu, **_averaging_kwargs(config))


def _fedsgd(config: RunConfig) -> Strategy:
    return FedSGD(**_averaging_kwargs(config))


def _feddf(config: RunConfig) -> Strategy:
    return FedDF(distiller=ServerDistiller(config), **_averaging_kwargs(config))


def _feddistill(config: RunConfig) -> Strategy:
    return FedDistill(
        distiller=ServerDistiller(config),
        server_model=config.model,
        num_classes=dataset_shape(config.dataset)[1],
        weighting=config.weighting,
        **sampling_kwargs(config),
    )


def _builtin(strategy_class: type[Strategy], config: RunConfig) -> Strategy:
    return strategy_class(**sampling_kwargs(config))


STRATEGIES: dict[str, StrategySpec] = {
    "fedavg": StrategySpec(
        _fedavg, "FedAvg (McMahan et al. 2017): weighted average of client models, server lr/momentum", supports_dp=True
    ),
    "fedsgd": StrategySpec(
        _fedsgd, "FedSGD (McMahan et al. 2017): one full-batch gradient per client per round", local_training=False
    ),
    "fedprox": StrategySpec(
        _fedprox, "FedProx (Li et al. 2020): proximal term on clients, stragglers' partial work kept", supports_dp=True
    ),
    "feddf": StrategySpec(
        _feddf, "FedDF (Lin et al. 2020): FedAvg + server-side ensemble distillation", uses_public_set=True, supports_dp=True
    ),
    "feddistill": StrategySpec(
        _feddistill,
        "Federated distillation (FD/FedMD): clients exchange soft labels on a public set",
        uses_public_set=True,
        heterogeneous_clients=True,
    ),
    **{
        name: StrategySpec(partial(_builtin, strategy_class), description, local_training=False)
        for name, (strategy_class, description) in BUILTINS.items()
    },
}
