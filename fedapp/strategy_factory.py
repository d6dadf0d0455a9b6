"""The ServerApp's side of the registry: build the strategy a validated `RunConfig` names.

Each builder passes the strategy what it needs from the app through its constructor:
sampling and averaging settings, the client sampler and DP mechanism (`privacy.py`:
seeded or secret draws, secret or seeded noise), a `Distiller` bound to the run's
model and public set, and (federated distillation) the nodes' architectures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from flwr.serverapp.strategy import Strategy

from fedapp.config import RunConfig
from fedapp.data import dataset_shape
from fedapp.distillation import ServerDistiller
from fedapp.nodes import NodeDirectory
from fedapp.privacy import client_sampler, noise_source
from strategies.builtin import BUILTINS
from strategies.dp import DifferentialPrivacy, PrivacySettings
from strategies.fedavg import FedAvg
from strategies.feddf import FedDF
from strategies.feddistill import FedDistill
from strategies.fedprox import FedProx
from strategies.fedsgd import FedSGD
from strategies.sampling import ClientSampler


def sampling_kwargs(config: RunConfig) -> dict[str, Any]:
    """Flower's node-sampling arguments, shared by every strategy."""
    return {
        "fraction_train": config.fraction_train,
        "fraction_evaluate": config.fraction_evaluate,
        "min_train_nodes": config.min_train_nodes,
        "min_evaluate_nodes": 1,
        "min_available_nodes": config.min_available_nodes,
    }


def differential_privacy(config: RunConfig, sampler: ClientSampler) -> DifferentialPrivacy | None:
    """The DP mechanism `config` asks for (None with `dp = "none"`), accounting `sampler`'s draws."""
    if config.dp == "none":
        return None
    settings = PrivacySettings(
        mode=config.dp,
        clipping_norm=config.dp_clipping_norm,
        noise_multiplier=config.dp_noise_multiplier,
        delta=config.dp_delta,
        max_epsilon=config.dp_max_epsilon,
        target_quantile=config.dp_target_quantile,
        clipping_norm_lr=config.dp_clipping_norm_lr,
        count_stddev=config.dp_count_noise_stddev,
    )
    return DifferentialPrivacy(settings, sampler, noise_source(config))


@dataclass(frozen=True)
class BuildContext:
    """What a builder gets: the run's settings and, in fedapp's federation loop, its directory of nodes."""

    config: RunConfig
    directory: NodeDirectory | None = None


def _averaging_kwargs(context: BuildContext) -> dict[str, Any]:
    """The settings every weight-averaging strategy of ours shares."""
    config = context.config
    sampler = client_sampler(config, context.directory.own_data_nodes if context.directory else None)
    return {
        "weighting": config.weighting,
        "server_learning_rate": config.server_learning_rate,
        "server_momentum": config.server_momentum,
        "straggler_fraction": config.straggler_fraction,
        "seed": config.seed,
        "sampler": sampler,
        "privacy": differential_privacy(config, sampler),
        **sampling_kwargs(config),
    }


def _fedavg(context: BuildContext) -> Strategy:
    return FedAvg(**_averaging_kwargs(context))


def _fedprox(context: BuildContext) -> Strategy:
    return FedProx(proximal_mu=context.config.proximal_mu, **_averaging_kwargs(context))


def _fedsgd(context: BuildContext) -> Strategy:
    return FedSGD(**_averaging_kwargs(context))


def _feddf(context: BuildContext) -> Strategy:
    return FedDF(distiller=ServerDistiller(context.config), **_averaging_kwargs(context))


def _feddistill(context: BuildContext) -> Strategy:
    config = context.config
    return FedDistill(
        distiller=ServerDistiller(config),
        server_model=config.model,
        num_classes=dataset_shape(config.dataset)[1],
        architectures=context.directory,
        weighting=config.weighting,
        **sampling_kwargs(config),
    )


def _builtin(strategy_class: type[Strategy], context: BuildContext) -> Strategy:
    return strategy_class(**sampling_kwargs(context.config))


BUILDERS: dict[str, Callable[[BuildContext], Strategy]] = {
    "fedavg": _fedavg,
    "fedsgd": _fedsgd,
    "fedprox": _fedprox,
    "feddf": _feddf,
    "feddistill": _feddistill,
    **{name: partial(_builtin, strategy_class) for name, strategy_class in BUILTINS.items()},
}


def build_strategy(config: RunConfig, directory: NodeDirectory | None = None) -> Strategy:
    """The strategy `config.strategy` names, built from `config`.

    `directory` tells which model each node trains and which nodes hold their own data;
    without it (a plain Flower app) federated distillation never sends the server's
    weights to a node, and under DP the client sample is always secret.
    """
    return BUILDERS[config.strategy](BuildContext(config, directory))
