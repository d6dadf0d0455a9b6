"""Data: the embedded MNIST split, flwr-datasets partitioning, node splits, the hub path on parquet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fedapp.data import (
    DataSpec,
    dataset_shape,
    load_node_data,
    load_public_split,
    load_server_validation,
    load_test_split,
)
from fedapp.data.embedded import load_mnist, split_indices
from fedapp.data.partition import PartitionSpec, partition_pool, split_validation
from tests.helpers import write_parquet_dataset


def spec(partitioner: str = "iid", seed: int = 0, public_size: int = 0, **kwargs: object) -> DataSpec:
    partition = PartitionSpec(partitioner, kwargs.get("alpha", 0.5), kwargs.get("classes", 2), seed)  # type: ignore[arg-type]
    return DataSpec("mnist", partition, 0.1, public_size)


def test_embedded_mnist_is_real_and_split_1000_4000() -> None:
    images, labels = load_mnist()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    test, pool = split_indices()
    assert len(test) == 1000 and len(pool) == 4000 and not set(test) & set(pool)
    assert len(load_test_split("mnist")) == 1000
    assert dataset_shape("mnist") == ((1, 28, 28), 10)


def test_iid_partitions_hold_all_ten_labels_and_cover_the_pool_once() -> None:
    nodes = [load_node_data(spec("iid"), i, 10) for i in range(10)]
    for node in nodes:
        assert sorted(torch.unique(node.train.labels).tolist()) == list(range(10))
    assert sum(len(n.train) + len(n.validation) for n in nodes) == 4000


def test_shard_gives_exactly_classes_per_node_labels() -> None:
    for classes in (1, 2, 3):
        for i in range(10):
            node = load_node_data(spec("shard", classes=classes), i, 10)
            labels = torch.cat([node.train.labels, node.validation.labels])
            assert len(torch.unique(labels)) == classes


def test_dirichlet_is_skewed_and_seeded() -> None:
    labels = load_mnist()[1][split_indices()[1]]
    small_alpha = partition_pool(labels, 10, PartitionSpec("dirichlet", 0.1, 2, 0))
    again = partition_pool(labels, 10, PartitionSpec("dirichlet", 0.1, 2, 0))
    other_seed = partition_pool(labels, 10, PartitionSpec("dirichlet", 0.1, 2, 1))
    assert all(np.array_equal(a, b) for a, b in zip(small_alpha, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(small_alpha, other_seed, strict=True))
    dominant = [np.bincount(labels[p], minlength=10).max() / len(p) for p in small_alpha]
    assert np.mean(dominant) > 0.5, "alpha=0.1 should give each node a dominant label"
    assert sum(len(p) for p in small_alpha) == 4000


def test_validation_split_keeps_training_data() -> None:
    train, validation = split_validation(np.arange(50), 0.1, np.random.default_rng(0))
    assert len(train) == 45 and len(validation) == 5 and not set(train) & set(validation)
    train, validation = split_validation(np.arange(1), 0.5, np.random.default_rng(0))
    assert len(train) == 1 and len(validation) == 0


def test_public_and_server_validation_sets_are_carved_from_the_pool_and_never_trained_on() -> None:
    carved = DataSpec("mnist", PartitionSpec("iid", 0.5, 2, 0), 0.1, 500, 400)
    public, validation = load_public_split(carved), load_server_validation(carved)
    assert public.features.shape == (500, 1, 28, 28) and len(public.labels) == 500
    assert validation.features.shape == (400, 1, 28, 28) and len(set(validation.labels.tolist())) == 10
    nodes = [load_node_data(carved, i, 10) for i in range(10)]
    assert sum(len(n.train) + len(n.validation) for n in nodes) == 3100

    def rows(features: torch.Tensor) -> set[tuple[float, ...]]:
        return {tuple(x.flatten()[::7].tolist()) for x in features}

    server_rows = rows(public.features[:50]) | rows(validation.features[:50])
    assert not rows(public.features) & rows(validation.features)
    for node in nodes:
        assert not server_rows & rows(node.train.features)
        assert not server_rows & rows(node.validation.features)


def test_bad_partition_id_is_reported() -> None:
    with pytest.raises(ValueError, match="partition-id 10 is outside"):
        load_node_data(spec(), 10, 10)


def test_hub_path_loads_local_parquet_through_federated_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The online path (`FederatedDataset`) works the same on a local folder of parquet files."""
    monkeypatch.setenv("FEDAPP_CACHE_DIR", str(tmp_path / "cache"))
    images, labels = load_mnist()
    folder = write_parquet_dataset(
        tmp_path / "my-mnist", images, labels, {"train": range(1200), "test": range(4800, 5000)}
    )
    hub_spec = DataSpec(str(folder), PartitionSpec("iid", 0.5, 2, 0), 0.1, 0)
    node = load_node_data(hub_spec, 0, 4)
    assert len(node.train) + len(node.validation) == 300
    assert node.train.features.shape[1:] == (1, 28, 28)
    assert len(load_test_split(str(folder))) == 200
    assert (tmp_path / "cache").exists() and any((tmp_path / "cache").iterdir())
