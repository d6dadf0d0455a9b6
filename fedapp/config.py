"""The run configuration: one typed, validated object built from `context.run_config`.

Flower hands both apps a flat mapping of the `[tool.flwr.app.config]` defaults
merged with `-c` overrides. This module is the only place that reads it: it checks
every key's type, range and allowed names, and the combinations between keys, then
returns a frozen `RunConfig`. A bad value fails here, before any data is loaded or
any message is sent, with one line naming the key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fedapp.choices import (
    ATTACKABLE_STRATEGIES,
    ATTACKERS_RULE,
    ATTACKS,
    AUGMENTATIONS,
    AUTO_ATTACK_SCALE,
    BATCH_NORM_MODELS,
    BUILTIN_MODELS,
    CLASSIFICATION,
    FACTORY_RULE,
    IMAGE_MODELS,
    LABEL_FLIP,
    NO_ATTACK,
    NUM_EXAMPLES,
    REGRESSION,
    TASKS,
    is_factory,
    parse_attackers,
)
from fedapp.faults import ENABLE_VARIABLE, FAULT_RULE, fault_injection_enabled, parse_fault_plan
from fedapp.registry import STRATEGIES, StrategySpec
from strategies.robust_aggregation import MEAN as MEAN_AGGREGATION
from strategies.robust_aggregation import AggregationRule

MODELS = BUILTIN_MODELS
MODEL_RULE = f"{', '.join(MODELS)}, or {FACTORY_RULE}"
SAME_MODEL = "same"
DP_MODES = ("none", "client-fixed", "server-fixed", "server-adaptive")  # strategies.dp.DP_MODES and "none"
DP_NOISE_SOURCES = ("secret", "seeded-insecure")  # strategies.noise.NOISE_SOURCES
SEEDED_NOISE = "seeded-insecure"
CLIENT_SAMPLINGS = ("fixed", "poisson")  # strategies.sampling.SAMPLING_METHODS
AUTO_COUNT_NOISE = -1.0
AUTO_PUBLIC_SIZE = -1
DEFAULT_PUBLIC_SIZE = 500
DEFAULT_SERVER_VALIDATION_SIZE = 400
NO_DATASET = "none"
EMBEDDED_DATASETS = ("mnist", "synthetic", "diabetes", NO_DATASET)
DEFAULT_DATASETS = {CLASSIFICATION: "mnist", REGRESSION: "diabetes"}
CLASSIFICATION_DATASETS = ("mnist", "synthetic")
DATASET_RULE = (
    f"'' (the task's default: mnist, or diabetes for regression), {', '.join(EMBEDDED_DATASETS)}, a hub dataset id "
    "'owner/name', or the absolute path of an existing local dataset (file or folder)"
)
PARTITIONERS = ("iid", "dirichlet", "shard", "natural")
CLASS_PARTITIONERS = ("dirichlet", "shard")
WEIGHTINGS = ("examples", "uniform")
ROBUST_STRATEGIES = ("fedavg", "fedprox", "fednova", "fedsgd")  # their aggregate is one average of updates
WITH_TRAIN = "with-train"
SEPARATE = "separate"
FEDERATED_EVALUATIONS = (WITH_TRAIN, SEPARATE)
NO_TRACKING = "none"
TRACKERS = ("tensorboard", "mlflow")


class ConfigError(ValueError):
    """A run-config value is missing, of the wrong type, or not allowed."""


@dataclass(frozen=True)
class RunConfig:
    """Every setting of a run, typed and validated. Field `x_y` is config key `x-y`."""

    seed: int
    num_server_rounds: int
    output_dir: str
    run_name: str
    model: str
    hidden_sizes: str
    task: str
    dataset: str
    image_column: str
    label_column: str
    target_column: str
    feature_columns: str
    image_size: int
    augment: str
    input_shape: str
    num_classes: int
    partitioner: str
    partition_by: str
    dirichlet_alpha: float
    classes_per_node: int
    validation_fraction: float
    local_epochs: int
    batch_size: int
    learning_rate: float
    lr_decay: float
    fraction_train: float
    fraction_evaluate: float
    federated_evaluation: str
    min_train_nodes: int
    min_available_nodes: int
    round_timeout: float
    strategy: str
    weighting: str
    aggregation: str
    aggregation_trim_fraction: float
    aggregation_byzantine: int
    aggregation_selected: int
    aggregation_centered_clipping_tau: float
    aggregation_centered_clipping_iterations: int
    client_sampling: str
    server_learning_rate: float
    server_momentum: float
    proximal_mu: float
    client_momentum: float
    ditto_lambda: float
    straggler_fraction: float
    client_model: str
    public_size: int
    distill_temperature: float
    distill_steps: int
    distill_batch_size: int
    distill_learning_rate: float
    distill_eval_every: int
    distill_patience: int
    distill_validation_size: int
    distill_fallback: bool
    distill_dataset: str
    digest_epochs: int
    digest_batch_size: int
    transfer_epochs: int
    public_samples_per_round: int
    push_server_weights: bool
    fd_gamma: float
    dp: str
    dp_clipping_norm: float
    dp_noise_multiplier: float
    dp_delta: float
    dp_noise: str
    dp_max_epsilon: float
    dp_target_quantile: float
    dp_clipping_norm_lr: float
    dp_count_noise_stddev: float
    synthetic_alpha: float
    synthetic_beta: float
    max_update_norm: float
    outlier_norm_ratio: float
    max_claim_ratio: float
    simulation_fast_path: bool
    clients_per_node: int
    resume_from: str
    fault_injection: str
    attack: str
    attackers: str
    attack_scale: float
    tracking: str
    tracking_uri: str
    tracking_experiment: str

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> RunConfig:
        """Build and validate a `RunConfig` from Flower's flat run-config mapping.

        Raises
        ------
        ConfigError
            On a missing or unknown key, a value of the wrong type, or a value
            outside what the key allows.
        """
        known = {_key(f.name) for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"unknown run-config key {unknown[0]!r}; known keys: {', '.join(sorted(known))}")
        values = {f.name: _typed(raw, _key(f.name), f.type) for f in dataclasses.fields(cls)}
        if values["dataset"] == "" and values["task"] in DEFAULT_DATASETS:
            values["dataset"] = DEFAULT_DATASETS[values["task"]]
        config = cls(**values)
        config._validate()
        return config

    @property
    def public_set_size(self) -> int:
        """Samples carved from the pool as the unlabelled public set (`public-size`, -1 = auto).

        Auto gives `DEFAULT_PUBLIC_SIZE` to strategies that distil on a public set and 0
        to the others; an explicit size applies to every strategy, so runs of different
        strategies can share identical private partitions.
        """
        if self.public_size != AUTO_PUBLIC_SIZE:
            return self.public_size
        return DEFAULT_PUBLIC_SIZE if self._strategy_spec().uses_public_set else 0

    @property
    def evaluates_with_train(self) -> bool:
        """True when clients evaluate the global model they receive with the training message (one exchange a round).

        Federated distillation, FedBN and Ditto evaluate each node's own model, which no
        training message carries, so they always evaluate in an exchange of its own.
        """
        return (
            self.fraction_evaluate > 0
            and self.federated_evaluation == WITH_TRAIN
            and self._strategy_spec().evaluates_global_model
        )

    @property
    def feature_column_names(self) -> tuple[str, ...]:
        """`feature-columns` as a tuple of names (empty: every numeric column but the target)."""
        return _names(self.feature_columns)

    @property
    def hidden_layer_sizes(self) -> tuple[int, ...]:
        """`hidden-sizes` as a tuple of widths (the `mlp` model's hidden layers)."""
        return tuple(int(size) for size in _names(self.hidden_sizes))

    @property
    def input_dimensions(self) -> tuple[int, ...]:
        """`input-shape` as a tuple (`3x32x32` -> (3, 32, 32)); empty unless `dataset = "none"`."""
        return tuple(int(size) for size in self.input_shape.split("x")) if self.input_shape else ()

    @property
    def server_validation_set_size(self) -> int:
        """Labelled samples carved from the pool after the public set to validate server distillation.

        `distill-validation-size`, -1 = auto: `DEFAULT_SERVER_VALIDATION_SIZE` for the
        strategies that distil on the server (FedDF, FedMD's server model), 0 for the
        others; an explicit size applies to every strategy (identical partitions).
        """
        if self.distill_validation_size != AUTO_PUBLIC_SIZE:
            return self.distill_validation_size
        return DEFAULT_SERVER_VALIDATION_SIZE if self._strategy_spec().distils_on_server else 0

    @property
    def fault_plan(self) -> dict[str, str]:
        """Test-only faults by node key (`fault-injection`); empty in a normal run."""
        return parse_fault_plan(self.fault_injection)

    @property
    def trackers(self) -> tuple[str, ...]:
        """The tracking sinks of `tracking` (none for 'none')."""
        return parse_trackers(self.tracking)

    @property
    def aggregation_rule(self) -> AggregationRule:
        """The `aggregation` rule with its `aggregation-*` settings (validated: `_validate_aggregation`)."""
        return AggregationRule(
            self.aggregation,
            trim_fraction=self.aggregation_trim_fraction,
            byzantine=self.aggregation_byzantine,
            selected=self.aggregation_selected,
            centered_clipping_tau=self.aggregation_centered_clipping_tau,
            centered_clipping_iterations=self.aggregation_centered_clipping_iterations,
        )

    def client_model_for(self, partition_id: int) -> str:
        """The model architecture of node `partition_id` (`client-model`: same, a name, or a list)."""
        if self.client_model == SAME_MODEL:
            return self.model
        names = [name.strip() for name in self.client_model.split(",")]
        return names[partition_id % len(names)]

    def _strategy_spec(self) -> StrategySpec:
        return STRATEGIES[self.strategy]

    def to_mapping(self) -> dict[str, Any]:
        """Return the flat `key-name: value` mapping this config was built from."""
        return {_key(f.name): getattr(self, f.name) for f in dataclasses.fields(self)}

    def _validate(self) -> None:
        """Check ranges, names and combinations; raise `ConfigError` on the first bad one."""
        _choice(self, "strategy", tuple(STRATEGIES))
        _choice(self, "task", TASKS)
        _check(self, "model", _is_model, MODEL_RULE)
        _check(self, "dataset", _is_dataset_name, DATASET_RULE)
        _choice(self, "partitioner", PARTITIONERS)
        _choice(self, "weighting", WEIGHTINGS)
        _choice(self, "federated_evaluation", FEDERATED_EVALUATIONS)
        for name in ("num_server_rounds", "batch_size", "classes_per_node"):
            _check(self, name, lambda v: v >= 1, "an integer >= 1")
        _check(
            self,
            "local_epochs",
            lambda v: v >= 0,
            "an integer >= 0 (0: clients send the weights back untrained, for benchmarks)",
        )
        for name in ("min_train_nodes", "min_available_nodes"):
            _check(self, name, lambda v: v >= 1, "an integer >= 1")
        for name in ("learning_rate", "dirichlet_alpha", "round_timeout"):
            _check(self, name, lambda v: v > 0, "a number > 0")
        _check(self, "lr_decay", lambda v: 0 < v <= 1, "a number in (0, 1]")
        _check(self, "fraction_train", lambda v: 0 < v <= 1, "a number in (0, 1]")
        _check(
            self, "fraction_evaluate", lambda v: 0 <= v <= 1, "a number in [0, 1] (0 turns federated evaluation off)"
        )
        _check(self, "validation_fraction", lambda v: 0 <= v < 1, "a number in [0, 1)")
        _check(self, "seed", lambda v: v >= 0, "an integer >= 0")
        _check(
            self,
            "clients_per_node",
            lambda v: v >= 0,
            "an integer >= 0 (0: auto, 1: one client per SuperNode, K: K clients per simulated SuperNode)",
        )
        _check(self, "output_dir", lambda v: bool(v.strip()), "a non-empty path")
        _check(self, "run_name", _is_plain_name, "empty, or a folder name of letters, digits, '.', '_' and '-'")
        if self.fraction_evaluate > 0 and self.validation_fraction == 0:
            raise ConfigError(
                "run-config key 'validation-fraction' = 0.0 leaves nodes nothing to evaluate on; "
                "allowed: > 0 while fraction-evaluate > 0 (or set fraction-evaluate=0)"
            )
        self._validate_strategy_settings()
        self._validate_data_settings()
        self._validate_synthetic()
        self._validate_reliability()
        self._validate_attack()
        self._validate_tracking()
        if self.min_available_nodes < self.min_train_nodes:
            raise ConfigError(
                f"run-config key 'min-available-nodes' = {self.min_available_nodes} is below "
                f"min-train-nodes = {self.min_train_nodes}; allowed: >= min-train-nodes"
            )

    def _validate_data_settings(self) -> None:
        """The columns, image size and augmentation, the model's settings, regression, and `dataset = "none"`."""
        _choice(self, "augment", AUGMENTATIONS)
        _check(self, "image_size", lambda v: v >= 0, "an integer >= 0 (0 keeps the images' own size)")
        _check(self, "hidden_sizes", _is_size_list, "'' or widths >= 1 separated by commas, e.g. '200,200'")
        _check(self, "input_shape", _is_shape, "'' or sizes >= 1 joined by 'x', e.g. '3x32x32' or '10'")
        _check(self, "num_classes", lambda v: v >= 0, "an integer >= 0 (0: from the data)")
        if self.dataset == NO_DATASET:
            _check(self, "input_shape", bool, "a shape with dataset='none' (the server has no data to take it from)")
            _check(
                self,
                "num_classes",
                lambda v: v >= 2 if self.task == CLASSIFICATION else v == 0,
                "an integer >= 2 with dataset='none' and classification (0 for a regression)",
            )
        else:
            unset = "'' and 0: the dataset gives its shape and classes (set them only with dataset='none')"
            _check(self, "input_shape", lambda v: not v, unset)
            _check(self, "num_classes", lambda v: v == 0, unset)
        if self.task == REGRESSION:
            self._validate_regression()
        _check(
            self,
            "partition_by",
            lambda v: not v or self.partitioner == "natural",
            "'' unless partitioner = natural (it names the column whose values are the nodes)",
        )

    def _validate_regression(self) -> None:
        """Regression has no classes: no class-based splits, no soft-label strategies, no class datasets."""
        spec = self._strategy_spec()
        _check(
            self,
            "strategy",
            lambda _: not spec.classification_only,
            f"a strategy without class probabilities with task='regression' ({', '.join(_regression_strategies())}); "
            f"{self.strategy!r} distils soft labels (class probabilities), which a regression has not",
        )
        _check(
            self,
            "partitioner",
            lambda v: v not in CLASS_PARTITIONERS,
            "iid or natural with task='regression' (dirichlet and shard split by class)",
        )
        _check(
            self,
            "dataset",
            lambda v: v not in CLASSIFICATION_DATASETS,
            "diabetes, a table or image dataset with a numeric target, or 'none' with task='regression' "
            f"({self.dataset!r} is a classification dataset)",
        )

    def _validate_synthetic(self) -> None:
        """Synthetic(alpha, beta) comes in devices: it is split by device, for flat-input models."""
        for name in ("synthetic_alpha", "synthetic_beta"):
            _check(self, name, lambda v: v >= 0, "a number >= 0")
        synthetic = self.dataset == "synthetic"
        _check(
            self,
            "partitioner",
            lambda v: v == "natural" or not synthetic,
            "natural (each device is a node) with dataset 'synthetic'",
        )
        _check(
            self,
            "partitioner",
            lambda v: v != "natural" or synthetic or bool(self.partition_by),
            "iid, dirichlet, shard, or natural with partition-by naming the column of node ids",
        )
        _check(
            self,
            "model",
            lambda v: v not in IMAGE_MODELS or not synthetic,
            "2nn or logreg with dataset 'synthetic' (60 features)",
        )

    def _validate_reliability(self) -> None:
        """Update screening, resuming and (test-only) fault injection."""
        _check(self, "max_update_norm", lambda v: v >= 0, "a number >= 0 (0 turns the check off)")
        for ratio in ("outlier_norm_ratio", "max_claim_ratio"):
            _check(self, ratio, lambda v: v == 0 or v >= 1, "0 (off) or a number >= 1 (times the round's median)")
        _check(
            self,
            "resume_from",
            lambda v: v == "" or os.path.isabs(v),
            "'' or the absolute path of an earlier run's folder or of its checkpoint.pt",
        )
        _check(self, "fault_injection", _parses(parse_fault_plan), FAULT_RULE)
        if self.fault_injection and not fault_injection_enabled():
            raise ConfigError(
                f"run-config key 'fault-injection' = {self.fault_injection!r} needs {ENABLE_VARIABLE}=1 in the "
                "environment of the ServerApp and ClientApps (tests only); allowed here: ''"
            )

    def _validate_attack(self) -> None:
        """Attacks (research only): both `attack` and `attackers` or neither, a scale the attack uses."""
        _choice(self, "attack", ATTACKS)
        _check(self, "attackers", _parses(parse_attackers), ATTACKERS_RULE)
        attacking = self.attack != NO_ATTACK
        _check(
            self,
            "attackers",
            lambda v: bool(v.strip()) == attacking,
            f"the attacking nodes with attack = {self.attack!r}: {ATTACKERS_RULE}"
            if attacking
            else f"'' with attack = {NO_ATTACK!r} (set attack too, to make them attack)",
        )
        _check(
            self,
            "strategy",
            lambda v: not attacking or v in ATTACKABLE_STRATEGIES,
            f"{', '.join(ATTACKABLE_STRATEGIES)} with attack = {self.attack!r} (nodes that reply with trained weights)",
        )
        _check(
            self,
            "task",
            lambda v: self.attack != LABEL_FLIP or v == CLASSIFICATION,
            f"{CLASSIFICATION!r} with attack = {LABEL_FLIP!r} (a regression has no labels to flip)",
        )
        auto = AUTO_ATTACK_SCALE
        if self.attack in (NO_ATTACK, LABEL_FLIP):
            rule, ok = f"{auto:g} with attack = {self.attack!r} (it has no scale)", lambda v: v == auto
        elif self.attack == NUM_EXAMPLES:
            rule, ok = f"{auto:g} (the attack's default) or a number >= 1", lambda v: v == auto or v >= 1
        else:
            rule, ok = f"{auto:g} (the attack's default) or a number > 0", lambda v: v == auto or v > 0
        _check(self, "attack_scale", ok, rule)

    def _validate_tracking(self) -> None:
        """Sinks by name; an MLflow store only for MLflow (the packages are checked on the server's side)."""
        _check(
            self,
            "tracking",
            _is_tracking,
            f"'{NO_TRACKING}' or a comma list of {', '.join(TRACKERS)} (each at most once)",
        )
        _check(
            self,
            "tracking_uri",
            lambda v: v == "" or ("mlflow" in self.trackers and _is_uri(v)),
            "'' (the local store mlflow.db), or an MLflow tracking URI such as http://host:5000 or "
            "sqlite:///path/mlflow.db while tracking includes mlflow",
        )
        _check(self, "tracking_experiment", lambda v: bool(v.strip()), "a non-empty MLflow experiment name")

    def _validate_strategy_settings(self) -> None:
        """Check the strategy's own keys and which strategies a setting is allowed with."""
        _check(self, "server_momentum", lambda v: 0 <= v < 1, "a number in [0, 1)")
        _check(self, "proximal_mu", lambda v: v >= 0, "a number >= 0")
        _check(self, "client_momentum", lambda v: 0 <= v < 1, "a number in [0, 1)")
        _check(self, "ditto_lambda", lambda v: v >= 0, "a number >= 0")
        _check(self, "straggler_fraction", lambda v: 0 <= v <= 1, "a number in [0, 1]")
        _check(
            self,
            "client_model",
            _is_client_model,
            f"'{SAME_MODEL}', or one or more of {MODEL_RULE} separated by commas",
        )
        for name in ("dp_clipping_norm", "server_learning_rate"):
            _check(self, name, lambda v: v > 0, "a number > 0")
        self._validate_privacy()
        self._validate_aggregation()
        spec = self._strategy_spec()
        _check(
            self,
            "straggler_fraction",
            lambda v: v == 0 or spec.local_training,
            f"0 with strategy {self.strategy!r} (no local epochs to cut short)",
        )
        _check(
            self,
            "straggler_fraction",
            lambda v: v == 0 or self.local_epochs >= 2,
            f"0 while local-epochs < 2 (stragglers do fewer than local-epochs={self.local_epochs})",
        )
        _check(
            self,
            "client_momentum",
            lambda v: v == 0 or spec.local_training,
            f"0 with strategy {self.strategy!r} (no local SGD to add momentum to)",
        )
        _check(
            self,
            "model",
            lambda v: v in BATCH_NORM_MODELS or not spec.needs_batch_norm,
            f"{' or '.join(BATCH_NORM_MODELS)} with strategy {self.strategy!r} (it keeps BatchNorm layers local)",
        )
        _check(
            self,
            "dp",
            lambda v: v == "none" or spec.supports_dp,
            f"'none' with strategy {self.strategy!r} "
            f"(dp wraps the weight-averaging strategies: {', '.join(_dp_strategies())})",
        )
        _check(
            self,
            "client_sampling",
            lambda v: v == "fixed" or spec.own_sampling,
            f"'fixed' with strategy {self.strategy!r} (poisson sampling is implemented by "
            f"{', '.join(name for name, s in STRATEGIES.items() if s.own_sampling)})",
        )
        _check(
            self,
            "client_model",
            lambda v: v in (SAME_MODEL, self.model) or spec.heterogeneous_clients,
            f"'{SAME_MODEL}' with strategy {self.strategy!r} "
            "(only logit-exchanging strategies allow other client architectures)",
        )
        self._validate_distillation(spec)

    def _validate_distillation(self, spec: StrategySpec) -> None:
        """The public set, server distillation (FedDF, FedMD) and the clients' side of FD and FedMD."""
        for name in ("public_size", "distill_validation_size"):
            _check(self, name, lambda v: v >= AUTO_PUBLIC_SIZE, f"{AUTO_PUBLIC_SIZE} (auto) or an integer >= 0")
        for name in ("distill_temperature", "distill_learning_rate"):
            _check(self, name, lambda v: v > 0, "a number > 0")
        for name in ("distill_steps", "distill_batch_size", "distill_eval_every", "distill_patience"):
            _check(self, name, lambda v: v >= 1, "an integer >= 1")
        _check(self, "digest_batch_size", lambda v: v >= 1, "an integer >= 1")
        for name in ("digest_epochs", "transfer_epochs", "public_samples_per_round"):
            _check(self, name, lambda v: v >= 0, "an integer >= 0")
        _check(self, "fd_gamma", lambda v: v >= 0, "a number >= 0")
        _check(
            self,
            "public_size",
            lambda _: self.public_set_size > 0 or not spec.uses_public_set,
            f"-1 (auto) or > 0 with strategy {self.strategy!r}, which distils on a public set",
        )
        _check(
            self,
            "distill_dataset",
            lambda v: (
                v == "" or (spec.distils_ensemble and _is_dataset_name(v) and v not in (self.dataset, NO_DATASET))
            ),
            f"'' (the public slice), or with strategy feddf another dataset than {self.dataset!r}: {DATASET_RULE}",
        )
        _check(
            self,
            "push_server_weights",
            lambda v: not v or spec.server_distillation == "consensus",
            f"false with strategy {self.strategy!r} (only fedmd/feddistill have a server model to push)",
        )

    def _validate_aggregation(self) -> None:
        """A robust `aggregation` rule: its settings, the strategies it composes with, DP and enough replies."""
        try:
            rule = self.aggregation_rule
        except ValueError as error:
            raise ConfigError(f"run-config {error}") from None
        if rule.name == MEAN_AGGREGATION:
            return
        _check(
            self,
            "strategy",
            lambda v: v in ROBUST_STRATEGIES,
            f"{', '.join(ROBUST_STRATEGIES)} with aggregation = {rule.name!r} (the others aggregate more than weights)",
        )
        if self.dp != "none":
            raise ConfigError(f"run-config key 'dp' = {self.dp!r}: {rule.privacy_problem()}")
        _check(
            self,
            "min_train_nodes",
            lambda v: v >= rule.min_replies,
            f"an integer >= {rule.min_replies}, the replies aggregation {rule.describe()} needs",
        )

    def _validate_privacy(self) -> None:
        """DP's mode, noise, budget and adaptive clipping's knobs."""
        _choice(self, "client_sampling", CLIENT_SAMPLINGS)
        _choice(self, "dp", DP_MODES)
        _choice(self, "dp_noise", DP_NOISE_SOURCES)
        _check(self, "dp_noise_multiplier", lambda v: v >= 0, "a number >= 0")
        _check(self, "dp_delta", lambda v: 0 < v < 1, "a number in (0, 1)")
        _check(self, "dp_max_epsilon", lambda v: v >= 0, "a number >= 0 (0: no budget)")
        _check(self, "dp_target_quantile", lambda v: 0 < v < 1, "a number in (0, 1)")
        _check(self, "dp_clipping_norm_lr", lambda v: v > 0, "a number > 0")
        _check(
            self,
            "dp_count_noise_stddev",
            lambda v: v == AUTO_COUNT_NOISE or v > self.dp_noise_multiplier / 2 or self.dp != "server-adaptive",
            f"{AUTO_COUNT_NOISE:g} (auto: expected clients / 20) or a number > dp-noise-multiplier / 2 "
            f"= {self.dp_noise_multiplier / 2:g} (Andrew et al.: z < 2 sigma_b)",
        )


def refuse_seeded_noise(config: RunConfig, own_data_nodes: int) -> None:
    """Refuse seeded DP noise when any node trains on its own data (a deployment).

    Every node receives the run config, so seeded noise can be regenerated and
    subtracted by any of them: it protects nobody. Run by the ServerApp once it knows
    its nodes and by every node with a `data-path` before it trains.

    Raises
    ------
    ConfigError
        With dp on, `dp-noise` seeded-insecure and `own_data_nodes` > 0.
    """
    if own_data_nodes and config.dp != "none" and config.dp_noise == SEEDED_NOISE:
        raise ConfigError(
            f"run-config key 'dp-noise' = {SEEDED_NOISE!r} is not allowed with nodes that train on their own "
            "data (data-path): anyone who knows the run config can regenerate and subtract seeded noise; "
            "allowed: 'secret'"
        )


def parse_trackers(value: str) -> tuple[str, ...]:
    """`'tensorboard, mlflow'` -> ('tensorboard', 'mlflow'); 'none' -> ()."""
    if value.strip() == NO_TRACKING:
        return ()
    return tuple(name.strip() for name in value.split(","))


def _is_tracking(value: str) -> bool:
    """True for 'none' or distinct known sink names separated by commas."""
    names = parse_trackers(value)
    return value.strip() == NO_TRACKING or (
        bool(names) and all(name in TRACKERS for name in names) and len(set(names)) == len(names)
    )


def _is_uri(value: str) -> bool:
    """True for `scheme:...` (http://, https://, sqlite:///, postgresql://, databricks, ...)."""
    scheme, sep, rest = value.partition(":")
    return value == "databricks" or (bool(sep) and scheme.isidentifier() and bool(rest))


def _dp_strategies() -> list[str]:
    return [name for name, spec in STRATEGIES.items() if spec.supports_dp]


def _regression_strategies() -> list[str]:
    return [name for name, spec in STRATEGIES.items() if not spec.classification_only]


def _names(text: str) -> tuple[str, ...]:
    """Comma-separated names, stripped, empty ones dropped."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _is_size_list(value: str) -> bool:
    """True for '' or positive integers separated by commas."""
    return all(size.isdigit() and int(size) >= 1 for size in _names(value)) and (
        value.strip() == "" or len(_names(value)) == len(value.split(","))
    )


def _is_shape(value: str) -> bool:
    """True for '' or positive integers joined by 'x' (1 or 3 of them: features, or channels x height x width)."""
    sizes = value.split("x")
    return value == "" or (len(sizes) in (1, 3) and all(size.isdigit() and int(size) >= 1 for size in sizes))


def _is_model(value: str) -> bool:
    """True for a built-in model name or a `package.module:factory` reference."""
    return value in MODELS or is_factory(value)


def _parses(parse: Callable[[str], object]) -> Callable[[str], bool]:
    """A check that is true for the values `parse` accepts (it raises `ValueError` on the others)."""

    def accepted(value: str) -> bool:
        try:
            parse(value)
        except ValueError:
            return False
        return True

    return accepted


def _is_client_model(value: str) -> bool:
    """True for 'same' or a comma-separated list of known model names."""
    return value == SAME_MODEL or all(_is_model(name.strip()) for name in value.split(","))


def _key(field_name: str) -> str:
    """Map a dataclass field name to its run-config key (`num_server_rounds` -> `num-server-rounds`)."""
    return field_name.replace("_", "-")


NUMBERS_AS_TEXT = ("attackers",)  # text keys whose value may be a number
_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def _typed(raw: Mapping[str, Any], key: str, type_name: str) -> Any:
    """Return `raw[key]` checked against the field's declared type (ints are accepted as floats).

    A float must be finite: TOML reads `nan` and `inf`, and no key means anything by them
    (`learning-rate = inf` would train every weight to nan and still exit 0).
    """
    if key not in raw:
        raise ConfigError(f"missing run-config key {key!r}: add it to [tool.flwr.app.config] in pyproject.toml")
    value = raw[key]
    if key in NUMBERS_AS_TEXT and isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)  # `-c attackers=0.2` arrives as a float
    allowed = _TYPES[type_name]
    if (isinstance(value, bool) and type_name != "bool") or not isinstance(value, allowed):
        raise ConfigError(f"run-config key {key!r} = {value!r} has type {type(value).__name__}; allowed: {type_name}")
    if type_name == "float" and not math.isfinite(value):
        raise ConfigError(
            f"run-config key {key!r} = {value!r} is not allowed; allowed: a finite number (not nan or inf)"
        )
    return float(value) if type_name == "float" else value


def _check(config: RunConfig, name: str, ok: Callable[[Any], bool], allowed: str) -> None:
    """Raise `ConfigError` naming key, value and what is allowed unless `ok(value)`."""
    value = getattr(config, name)
    if not ok(value):
        raise ConfigError(f"run-config key {_key(name)!r} = {value!r} is not allowed; allowed: {allowed}")


def _choice(config: RunConfig, name: str, choices: tuple[str, ...]) -> None:
    """Raise `ConfigError` unless the field's value is one of `choices`."""
    _check(config, name, lambda v: v in choices, ", ".join(choices))


def _is_dataset_name(value: str) -> bool:
    """True for an embedded dataset, an 'owner/name' hub id, or an existing absolute path."""
    if value in EMBEDDED_DATASETS:
        return True
    if value.startswith(("/", ".", "~")):
        return os.path.isabs(value) and os.path.exists(value)
    owner, _, name = value.partition("/")
    return bool(owner) and bool(name) and "/" not in name


def _is_plain_name(value: str) -> bool:
    """True for '' or a single path component made of safe characters."""
    return value == "" or (all(c.isalnum() or c in "._-" for c in value) and value not in (".", ".."))
