"""The ServerApp's side of the registry: build the strategy a validated `RunConfig` names.

Each builder passes the strategy what it needs from the app through its constructor:
sampling and averaging settings, the client sampler and DP mechanism (`privacy.py`:
seeded or secret draws, secret or seeded noise), a `Distiller` bound to the run's
model, public set and server validation split, (FedMD) the nodes' architectures,
(strategies whose clients keep state) the nodes' stable keys, and (SCAFFOLD) which
arrays of the model are trainable parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from flwr.serverapp.strategy import Strategy

from fedapp.config import RunConfig
from fedapp.data import run_schema
from fedapp.distillation import ServerDistiller
from fedapp.evaluation import run_model
from fedapp.models import parameter_keys
from fedapp.nodes import NodeDirectory
from fedapp.privacy import client_sampler, noise_source
from strategies.builtin import BUILTINS
from strategies.ditto import Ditto
from strategies.dp import DifferentialPrivacy, PrivacySettings
from strategies.fd import FD
from strategies.fedavg import FedAvg
from strategies.fedbn import FedBN
from strategies.feddf import FedDF
from strategies.fedmd import FedMD
from strategies.fednova import FedNova
from strategies.fedprox import FedProx
from strategies.fedsgd import FedSGD
from strategies.sampling import ClientSampler
from strategies.scaffold import Scaffold


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
        "aggregation": config.aggregation_rule,
        **sampling_kwargs(config),
    }


def _fedavg(context: BuildContext) -> Strategy:
    return FedAvg(**_averaging_kwargs(context))


def _fedprox(context: BuildContext) -> Strategy:
    return FedProx(proximal_mu=context.config.proximal_mu, **_averaging_kwargs(context))


def _fedsgd(context: BuildContext) -> Strategy:
    return FedSGD(**_averaging_kwargs(context))


def _scaffold(context: BuildContext) -> Strategy:
    config = context.config
    control_keys = parameter_keys(run_model(config, run_schema(config)))
    return Scaffold(control_keys=control_keys, node_keys=context.directory, **_averaging_kwargs(context))


def _fednova(context: BuildContext) -> Strategy:
    return FedNova(client_momentum=context.config.client_momentum, **_averaging_kwargs(context))


def _fedbn(context: BuildContext) -> Strategy:
    return FedBN(node_keys=context.directory, **_averaging_kwargs(context))


def _ditto(context: BuildContext) -> Strategy:
    config = context.config
    return Ditto(ditto_lambda=config.ditto_lambda, node_keys=context.directory, **_averaging_kwargs(context))


def _feddf(context: BuildContext) -> Strategy:
    return FedDF(distiller=ServerDistiller(context.config), **_averaging_kwargs(context))


def _fd(context: BuildContext) -> Strategy:
    config = context.config
    return FD(num_classes=run_schema(config).num_classes, node_keys=context.directory, **sampling_kwargs(config))


def _fedmd(context: BuildContext) -> Strategy:
    config = context.config
    return FedMD(
        distiller=ServerDistiller(config),
        server_model=config.model,
        num_classes=run_schema(config).num_classes,
        public_samples=config.public_samples_per_round,
        seed=config.seed,
        architectures=context.directory,
        push_weights=config.push_server_weights,
        **sampling_kwargs(config),
    )


def _builtin(strategy_class: type[Strategy], context: BuildContext) -> Strategy:
    return strategy_class(**sampling_kwargs(context.config))


BUILDERS: dict[str, Callable[[BuildContext], Strategy]] = {
    "fedavg": _fedavg,
    "fedsgd": _fedsgd,
    "fedprox": _fedprox,
    "scaffold": _scaffold,
    "fednova": _fednova,
    "fedbn": _fedbn,
    "ditto": _ditto,
    "feddf": _feddf,
    "fd": _fd,
    "fedmd": _fedmd,
    "feddistill": _fedmd,
    **{name: partial(_builtin, strategy_class) for name, strategy_class in BUILTINS.items()},
}


def build_strategy(config: RunConfig, directory: NodeDirectory | None = None) -> Strategy:
    """The strategy `config.strategy` names, built from `config`.

    `directory` tells which model each node trains and which nodes hold their own data;
    without it (a plain Flower app) FedMD never sends the server's weights to a node
    (even with `push-server-weights`), under DP the client sample is always secret, and
    node state (SCAFFOLD, FedBN, Ditto) is keyed by Flower's node ids, which hold for
    one run (a plain Flower app cannot resume anyway).
    """
    return BUILDERS[config.strategy](BuildContext(config, directory))
