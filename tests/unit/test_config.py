"""Run-config validation: every bad value fails at once, naming key, value and what is allowed."""

from __future__ import annotations

import pytest

from fedapp.config import ConfigError, RunConfig
from sim.overrides import app_defaults, parse_overrides, to_flwr_arguments
from tests.helpers import APP_DIR

DEFAULTS = app_defaults(APP_DIR)


def build(**changes: object) -> RunConfig:
    return RunConfig.from_mapping({**DEFAULTS, **{k.replace("_", "-"): v for k, v in changes.items()}})


def test_pyproject_defaults_are_valid() -> None:
    config = build()
    assert config.strategy == "fedavg" and config.model == "cnn" and config.dataset == "mnist"
    assert config.to_mapping() == {**DEFAULTS, **{k: float(v) for k, v in DEFAULTS.items() if isinstance(v, float)}}


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("strategy", "nope", "fedavg"),
        ("model", "vgg", "cnn, 2nn, logreg"),
        ("dataset", "nope", "mnist"),
        ("partitioner", "zipf", "iid, dirichlet, shard"),
        ("weighting", "random", "examples, uniform"),
        ("num-server-rounds", 0, ">= 1"),
        ("local-epochs", -1, ">= 0"),
        ("batch-size", 0, ">= 1"),
        ("learning-rate", 0.0, "> 0"),
        ("learning-rate", -0.1, "> 0"),
        ("fraction-train", 0.0, "(0, 1]"),
        ("fraction-train", 1.5, "(0, 1]"),
        ("fraction-evaluate", 1.01, "[0, 1]"),
        ("federated-evaluation", "later", "with-train, separate"),
        ("dirichlet-alpha", 0.0, "> 0"),
        ("dirichlet-alpha", -1.0, "> 0"),
    ],
)
def test_bad_values_name_key_value_and_allowed(key: str, value: object, allowed: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_mapping({**DEFAULTS, key: value})
    message = str(caught.value)
    assert f"{key!r} = {value!r}" in message
    assert allowed in message
    assert "\n" not in message


def test_wrong_type_unknown_and_missing_keys() -> None:
    with pytest.raises(ConfigError, match="'learning-rate' = 'fast' has type str; allowed: float"):
        build(learning_rate="fast")
    with pytest.raises(ConfigError, match="unknown run-config key 'lerning-rate'"):
        RunConfig.from_mapping({**DEFAULTS, "lerning-rate": 0.1})
    partial = dict(DEFAULTS)
    del partial["seed"]
    with pytest.raises(ConfigError, match="missing run-config key 'seed'"):
        RunConfig.from_mapping(partial)


def test_dataset_may_be_a_hub_id_or_an_existing_absolute_path(tmp_path) -> None:  # noqa: ANN001
    assert build(dataset="ylecun/mnist").dataset == "ylecun/mnist"
    assert build(dataset=str(tmp_path)).dataset == str(tmp_path)
    with pytest.raises(ConfigError, match="'dataset'"):
        build(dataset=str(tmp_path / "missing"))


def test_combinations_are_checked() -> None:
    with pytest.raises(ConfigError, match="'validation-fraction'"):
        build(validation_fraction=0.0)
    assert build(validation_fraction=0.0, fraction_evaluate=0.0).fraction_evaluate == 0.0
    with pytest.raises(ConfigError, match="'min-available-nodes'"):
        build(min_available_nodes=2, min_train_nodes=3)


def test_federated_evaluation_rides_on_training_unless_separate_off_or_of_local_models() -> None:
    assert build().evaluates_with_train
    assert not build(federated_evaluation="separate").evaluates_with_train
    assert not build(fraction_evaluate=0.0).evaluates_with_train
    distillation = build(strategy="feddistill", client_model="2nn,logreg", model="2nn")
    assert distillation.federated_evaluation == "with-train" and not distillation.evaluates_with_train
    with pytest.raises(ConfigError, match="'simulation-fast-path' = 'yes' has type str; allowed: bool"):
        build(simulation_fast_path="yes")


def test_overrides_parse_bare_words_and_reencode_for_flwr() -> None:
    overrides = parse_overrides(["strategy=fedprox num-server-rounds=3", 'run-name="a b" lr-decay=0.99 x=true'])
    assert overrides == {"strategy": "fedprox", "num-server-rounds": 3, "run-name": "a b", "lr-decay": 0.99, "x": True}
    assert to_flwr_arguments({"strategy": "fedprox", "num-server-rounds": 3, "x": True}) == [
        "-c",
        'strategy="fedprox"',
        "-c",
        "num-server-rounds=3",
        "-c",
        "x=true",
    ]
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["oops"])
