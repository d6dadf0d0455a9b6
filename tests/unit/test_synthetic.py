"""Synthetic(alpha, beta): shapes, determinism, heterogeneity, natural partitioning, config rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedapp.config import ConfigError
from fedapp.data import DataSpec, dataset_schema, load_node_data, load_test_split
from fedapp.data.partition import PartitionSpec, natural_partitions
from fedapp.data.synthetic import NUM_CLASSES, NUM_DEVICES, NUM_FEATURES, SyntheticSpec, generate, generate_devices
from sim.overrides import validated_config
from tests.helpers import APP_DIR


def data_spec(seed: int = 0, public_size: int = 0) -> DataSpec:
    return DataSpec(SyntheticSpec(1.0, 1.0, seed), PartitionSpec("natural", 0.5, 2, seed), 0.1, public_size)


def test_devices_have_the_papers_shapes_and_power_law_sizes() -> None:
    devices = generate_devices(SyntheticSpec(1.0, 1.0, 0))
    assert len(devices) == NUM_DEVICES == 30
    for device in devices:
        assert device.features.shape == (len(device.labels), NUM_FEATURES) and device.features.dtype == np.float32
        assert device.weights.shape == (NUM_FEATURES, NUM_CLASSES) and device.bias.shape == (NUM_CLASSES,)
        assert device.labels.min() >= 0 and device.labels.max() < NUM_CLASSES
        assert np.array_equal(device.labels, np.argmax(device.features @ device.weights + device.bias, axis=1))
    sizes = np.array([len(d.labels) for d in devices])
    assert sizes.min() >= 50
    assert sizes.max() > 5 * np.median(sizes), "lognormal(4, 2) sizes are heavy-tailed"


def test_each_device_holds_out_a_tenth_for_the_central_test_set() -> None:
    spec = SyntheticSpec(1.0, 1.0, 0)
    sizes = np.array([len(d.labels) for d in generate_devices(spec)])
    data = generate(spec)
    assert np.array_equal(np.bincount(data.pool_devices, minlength=NUM_DEVICES), (0.9 * sizes).astype(int))
    assert len(data.test_labels) == sizes.sum() - len(data.pool_labels)
    assert data.pool_features.shape[1] == data.test_features.shape[1] == NUM_FEATURES


def test_generation_is_deterministic_in_the_seed() -> None:
    first, again, other = (
        generate(SyntheticSpec(1.0, 1.0, 3)),
        generate(SyntheticSpec(1.0, 1.0, 3)),
        generate(SyntheticSpec(1.0, 1.0, 4)),
    )
    for name in ("pool_features", "pool_labels", "pool_devices", "test_features", "test_labels"):
        assert np.array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.test_labels[:50], other.test_labels[:50])


def _spread(values: list[float]) -> float:
    return float(np.std(values))


def test_beta_spreads_the_devices_feature_distributions() -> None:
    spreads = [
        np.mean(
            [
                _spread([d.features.mean() for d in generate_devices(SyntheticSpec(0.0, beta, seed))])
                for seed in range(5)
            ]
        )
        for beta in (0.0, 0.5, 1.0, 2.0)
    ]
    assert spreads == sorted(spreads) and spreads[-1] > 3 * spreads[0], spreads


def test_alpha_spreads_the_devices_models() -> None:
    spreads = [
        np.mean(
            [
                _spread([d.weights.mean() for d in generate_devices(SyntheticSpec(alpha, 0.0, seed))])
                for seed in range(5)
            ]
        )
        for alpha in (0.0, 0.5, 1.0, 2.0)
    ]
    assert spreads == sorted(spreads) and spreads[-1] > 3 * spreads[0], spreads


def test_devices_disagree_on_labels() -> None:
    devices = generate_devices(SyntheticSpec(1.0, 1.0, 0))
    distributions = np.array([np.bincount(d.labels, minlength=NUM_CLASSES) / len(d.labels) for d in devices])
    assert distributions.max(axis=1).mean() > 0.4, "each device is dominated by a few labels"
    assert len({int(row.argmax()) for row in distributions}) >= 4, "different devices favour different labels"


def test_natural_partitioning_makes_device_i_node_i() -> None:
    data = generate(SyntheticSpec(1.0, 1.0, 0))
    nodes = [load_node_data(data_spec(), i, NUM_DEVICES) for i in range(NUM_DEVICES)]
    for device, node in enumerate(nodes):
        expected = np.sort(data.pool_labels[data.pool_devices == device])
        assert np.array_equal(np.sort(torch.cat([node.train.labels, node.validation.labels]).numpy()), expected)
    assert len(load_test_split(SyntheticSpec(1.0, 1.0, 0))) == len(data.test_labels)
    schema = dataset_schema(SyntheticSpec(1.0, 1.0, 0))
    assert (schema.input_shape, schema.num_classes, schema.task) == ((60,), 10, "classification")


def test_fewer_nodes_than_devices_group_devices_and_the_public_slice_is_excluded() -> None:
    devices = np.array([0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
    assert [part.tolist() for part in natural_partitions(devices, 2)] == [[0, 2, 4, 5, 7, 9], [1, 3, 6, 8]]
    assert natural_partitions(devices, 5)[3].tolist() == [3, 8]
    with pytest.raises(ValueError, match="5 node ids for 6 nodes"):
        natural_partitions(devices, 6)
    total = sum(
        len(n.train) + len(n.validation) for n in (load_node_data(data_spec(public_size=100), i, 10) for i in range(10))
    )
    assert total == len(generate(SyntheticSpec(1.0, 1.0, 0)).pool_labels) - 100


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"dataset": "synthetic", "model": "logreg"}, "'partitioner' = 'iid' is not allowed; allowed: natural"),
        ({"dataset": "synthetic", "partitioner": "natural"}, "'model' = 'cnn' is not allowed; allowed: 2nn or logreg"),
        ({"partitioner": "natural"}, "'partitioner' = 'natural' is not allowed; allowed: iid, dirichlet, shard"),
        ({"synthetic-beta": -1.0}, "'synthetic-beta' = -1.0 is not allowed; allowed: a number >= 0"),
    ],
)
def test_config_rejects_synthetic_misuse(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        validated_config(APP_DIR, overrides)


def test_synthetic_config_is_accepted() -> None:
    config = validated_config(APP_DIR, {"dataset": "synthetic", "partitioner": "natural", "model": "logreg"})
    assert (config.synthetic_alpha, config.synthetic_beta) == (1.0, 1.0)
