"""Run-config validation: every bad value fails at once, naming key, value and what is allowed."""

from __future__ import annotations

import pytest

from fedapp.config import ConfigError, RunConfig
from sim.overrides import app_defaults, as_text_where_declared, parse_overrides, to_flwr_arguments
from tests.helpers import APP_DIR

DEFAULTS = app_defaults(APP_DIR)


def build(**changes: object) -> RunConfig:
    return RunConfig.from_mapping({**DEFAULTS, **{k.replace("_", "-"): v for k, v in changes.items()}})


def test_pyproject_defaults_are_valid() -> None:
    config = build()
    assert config.strategy == "fedavg" and config.model == "cnn" and config.dataset == "mnist"
    floats = {k: float(v) for k, v in DEFAULTS.items() if isinstance(v, float)}
    assert config.to_mapping() == {**DEFAULTS, **floats, "dataset": "mnist"}, "dataset '' is the task's default"
    assert build(task="regression").dataset == "diabetes"


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("strategy", "nope", "fedavg"),
        (
            "model",
            "vgg",
            "cnn, cnn-bn, cnn-small, cnn-small-bn, 2nn, logreg, mlp, resnet8, resnet18, or 'package.module:factory'",
        ),
        ("model", "usermodels.example", "'package.module:factory'"),
        ("task", "ranking", "classification, regression"),
        ("augment", "heavy", "none, standard"),
        ("image-size", -1, ">= 0"),
        ("hidden-sizes", "5,x", "widths >= 1 separated by commas"),
        ("input-shape", "3x32", "'' or sizes >= 1 joined by 'x'"),
        ("partition-by", "writer_id", "'' unless partitioner = natural"),
        ("num-classes", 10, "set them only with dataset='none'"),
        ("client-momentum", 1.0, "[0, 1)"),
        ("ditto-lambda", -1.0, ">= 0"),
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


@pytest.mark.parametrize(
    ("changes", "key", "allowed"),
    [
        ({"strategy": "feddf"}, "strategy", "'feddf' distils soft labels (class probabilities)"),
        ({"strategy": "feddistill"}, "strategy", "fedavg, fedsgd, fedprox"),
        ({"strategy": "fd"}, "strategy", "'fd' distils soft labels (class probabilities)"),
        ({"strategy": "fedmd"}, "strategy", "'fedmd' distils soft labels (class probabilities)"),
        ({"partitioner": "dirichlet"}, "partitioner", "iid or natural with task='regression'"),
        ({"dataset": "mnist"}, "dataset", "'mnist' is a classification dataset"),
    ],
)
def test_regression_refuses_what_needs_classes(changes: dict, key: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build(task="regression", **changes)
    assert f"'{key}'" in str(caught.value) and allowed in str(caught.value) and "\n" not in str(caught.value)
    assert build(task="regression", strategy="fedprox").dataset == "diabetes"


@pytest.mark.parametrize("strategy", ["scaffold", "fednova", "ditto"])
def test_regression_takes_the_weight_space_strategies(strategy: str) -> None:
    """SCAFFOLD, FedNova and Ditto average weights and train with the task's loss: a regression may use them."""
    assert build(task="regression", strategy=strategy).strategy == strategy
    assert build(task="regression", strategy="fedbn", model="resnet8").model == "resnet8"


def test_a_server_without_data_needs_the_input_shape_and_classes() -> None:
    with pytest.raises(ConfigError, match="'input-shape' = '' is not allowed; allowed: a shape with dataset='none'"):
        build(dataset="none")
    with pytest.raises(ConfigError, match=r"'num-classes' = 0 .* >= 2 with dataset='none'"):
        build(dataset="none", input_shape="1x28x28")
    config = build(dataset="none", input_shape="3x32x32", num_classes=10, model="resnet8")
    assert config.input_dimensions == (3, 32, 32)
    assert build(dataset="none", task="regression", input_shape="10", model="mlp").input_dimensions == (10,)


def test_natural_partitions_need_node_ids_and_models_may_be_factories() -> None:
    with pytest.raises(ConfigError, match="natural with partition-by naming the column of node ids"):
        build(partitioner="natural")
    assert build(partitioner="natural", partition_by="writer_id").partition_by == "writer_id"
    assert build(model="usermodels.example:small_cnn").model == "usermodels.example:small_cnn"
    assert build(model="mlp", hidden_sizes="5").hidden_layer_sizes == (5,)
    assert build(model="mlp", hidden_sizes="").hidden_layer_sizes == ()
    assert build(feature_columns="age, bmi").feature_column_names == ("age", "bmi")


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
    for strategy in ("fd", "fedmd", "ditto"):
        own_models = build(strategy=strategy)
        assert own_models.federated_evaluation == "with-train" and not own_models.evaluates_with_train
    assert build(strategy="scaffold").evaluates_with_train
    with pytest.raises(ConfigError, match="'simulation-fast-path' = 'yes' has type str; allowed: bool"):
        build(simulation_fast_path="yes")


def test_numbers_given_to_text_keys_are_text() -> None:
    overrides = as_text_where_declared(APP_DIR, parse_overrides(["hidden-sizes=5 input-shape=10 seed=3 augment=none"]))
    assert overrides == {"hidden-sizes": "5", "input-shape": "10", "seed": 3, "augment": "none"}
    assert to_flwr_arguments(overrides)[:2] == ["-c", 'hidden-sizes="5"']


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


def test_distillation_settings_and_the_strategies_they_belong_to() -> None:
    assert build(strategy="feddistill").strategy == "feddistill"
    fd, fedmd, feddf, fedavg = (build(strategy=name) for name in ("fd", "fedmd", "feddf", "fedavg"))
    assert (fd.public_set_size, fd.server_validation_set_size) == (0, 0)
    assert (fedmd.public_set_size, fedmd.server_validation_set_size) == (500, 400)
    assert (feddf.public_set_size, feddf.server_validation_set_size) == (500, 400)
    assert (fedavg.public_set_size, fedavg.server_validation_set_size) == (0, 0)
    assert build(strategy="fd", distill_validation_size=400).server_validation_set_size == 400
    assert build(strategy="fd", client_model="2nn,logreg").client_model_for(1) == "logreg"
    for key, value in (
        ("distill-steps", 0),
        ("distill-batch-size", 0),
        ("distill-eval-every", 0),
        ("distill-patience", 0),
        ("distill-validation-size", -2),
        ("digest-batch-size", 0),
        ("transfer-epochs", -1),
        ("public-samples-per-round", -1),
        ("fd-gamma", -0.5),
    ):
        with pytest.raises(ConfigError, match=f"'{key}' = {value!r}"):
            RunConfig.from_mapping({**DEFAULTS, "strategy": "fedmd", key: value})
    with pytest.raises(ConfigError, match=r"'push-server-weights' = True .*\(only fedmd/feddistill"):
        build(strategy="fd", push_server_weights=True)
    assert build(strategy="feddistill", push_server_weights=True).push_server_weights
    with pytest.raises(ConfigError, match=r"'distill-dataset' = 'ylecun/mnist' .* with strategy feddf"):
        build(strategy="fedmd", distill_dataset="ylecun/mnist")
    with pytest.raises(ConfigError, match="'distill-dataset' = 'mnist'"):
        build(strategy="feddf", distill_dataset="mnist")
    assert build(strategy="feddf", distill_dataset="zalando-datasets/fashion_mnist").distill_dataset
