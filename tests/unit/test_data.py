"""Data: the embedded sets, flwr-datasets partitioning, node splits, and any dataset through the hub's code path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fedapp.data import (
    DataError,
    DataSpec,
    Schema,
    SourceSpec,
    dataset_schema,
    load_local_node_data,
    load_node_data,
    load_public_split,
    load_server_validation,
    load_source,
    load_test_split,
)
from fedapp.data.embedded import load_mnist, split_indices
from fedapp.data.images import Augmentation, augmentation, normalize
from fedapp.data.partition import PartitionSpec, partition_pool, split_validation
from tests.helpers import write_parquet_dataset
from tests.hub_schemas import CIFAR10_CLASSES, write_cifar10_like, write_femnist_like, write_table_csv

MNIST = SourceSpec("mnist")


def spec(partitioner: str = "iid", seed: int = 0, public_size: int = 0, **kwargs: object) -> DataSpec:
    partition = PartitionSpec(partitioner, kwargs.get("alpha", 0.5), kwargs.get("classes", 2), seed)  # type: ignore[arg-type]
    return DataSpec(kwargs.get("source", MNIST), partition, 0.1, public_size)  # type: ignore[arg-type]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private data cache, so a test converts its own files."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("FEDAPP_CACHE_DIR", str(folder))
    return folder


def test_embedded_mnist_is_real_and_split_1000_4000() -> None:
    images, labels = load_mnist()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    test, pool = split_indices()
    assert len(test) == 1000 and len(pool) == 4000 and not set(test) & set(pool)
    assert len(load_test_split(MNIST)) == 1000
    assert dataset_schema(MNIST) == Schema((1, 28, 28), 10, "classification", "image")


def test_mnist_tensors_are_exactly_the_standard_normalisation() -> None:
    """The embedded digits keep the pipeline every MNIST result was measured with, bit for bit."""
    images, _ = load_mnist()
    test, _ = split_indices()
    standard = torch.from_numpy(images[test]).float().div_(255.0).sub_(0.1307).div_(0.3081).unsqueeze(1)
    features = load_test_split(MNIST).features
    assert torch.equal(features, standard)
    assert features.stride() == standard.stride(), "same layout: a channels-last stride changes convolutions' rounding"
    assert load_node_data(spec("iid"), 0, 10).train.features.stride() == (784, 784, 28, 1)


def test_normalisation_equals_torchvisions_normalize() -> None:
    from torchvision.transforms.v2 import functional as F  # noqa: PLC0415

    images = np.random.default_rng(0).integers(0, 256, (5, 3, 8, 8), dtype=np.uint8)
    mean, std = np.array([0.1, 0.5, 0.9], dtype=np.float32), np.array([0.2, 0.3, 0.4], dtype=np.float32)
    expected = F.normalize(torch.from_numpy(images).float().div_(255.0), mean.tolist(), std.tolist())
    assert torch.equal(normalize(images, mean, std), expected)


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
    carved = DataSpec(MNIST, PartitionSpec("iid", 0.5, 2, 0), 0.1, 500, 400)
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


def test_hub_path_loads_local_parquet_through_federated_dataset(tmp_path: Path, cache: Path) -> None:
    """The online path (`FederatedDataset`) works the same on a local folder of parquet files."""
    images, labels = load_mnist()
    folder = write_parquet_dataset(
        tmp_path / "my-mnist", images, labels, {"train": range(1200), "test": range(4800, 5000)}
    )
    hub_spec = DataSpec(SourceSpec(str(folder)), PartitionSpec("iid", 0.5, 2, 0), 0.1, 0)
    node = load_node_data(hub_spec, 0, 4)
    assert len(node.train) + len(node.validation) == 300
    assert node.train.features.shape[1:] == (1, 28, 28)
    assert len(load_test_split(SourceSpec(str(folder)))) == 200
    assert cache.exists() and any(cache.iterdir())


def test_cifar10_schema_is_32x32_rgb_normalised_with_its_training_statistics(tmp_path: Path, cache: Path) -> None:
    folder = write_cifar10_like(tmp_path / "cifar10", num_train=120, num_test=30)
    source_spec = SourceSpec(str(folder))
    source = load_source(source_spec)
    assert source.schema == Schema((3, 32, 32), 10, "classification", "image")
    assert source.class_names == CIFAR10_CLASSES and source.input_names == ("img",)
    assert len(source.pool_labels) == 120 and len(source.test_labels) == 30
    pool = source.inputs(source.pool_features)
    assert torch.allclose(pool.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(pool.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-2)
    nodes = [
        load_node_data(DataSpec(source_spec, PartitionSpec("dirichlet", 1.0, 2, 0), 0.1, 0), i, 3) for i in range(3)
    ]
    assert sum(len(n.train) + len(n.validation) for n in nodes) == 120


def test_femnist_without_a_test_split_holds_one_out_and_splits_naturally_by_writer(tmp_path: Path, cache: Path) -> None:
    folder = write_femnist_like(tmp_path / "femnist", num_writers=6, per_writer=20)
    source_spec = SourceSpec(str(folder), partition_by="writer_id")
    source = load_source(source_spec)
    assert source.schema == Schema((1, 28, 28), 62, "classification", "image")
    assert len(source.test_labels) == 24 and len(source.pool_labels) == 96, "20% held out for the server"
    assert source.label_name == "character", "found by name: FEMNIST's label column"
    writers = source.pool_ids
    for nodes in (6, 4):
        shares = [
            load_node_data(DataSpec(source_spec, PartitionSpec("natural", 1, 2, 0), 0.1, 0), i, nodes)
            for i in range(nodes)
        ]
        assert sum(len(s.train) + len(s.validation) for s in shares) == 96
    positions = DataSpec(source_spec, PartitionSpec("natural", 1, 2, 0), 0.1, 0)
    from fedapp.data import _pool_partitions  # noqa: PLC0415 (the positions behind each node's share)

    groups = [set(writers[p].tolist()) for p in _pool_partitions(positions, 4).values()]
    assert [len(g) for g in groups] == [2, 2, 1, 1], "6 writers over 4 nodes: ranks i, i + 4 on node i"
    assert all(not a & b for i, a in enumerate(groups) for b in groups[i + 1 :]), "no writer on two nodes"
    with pytest.raises(ValueError, match="6 node ids for 7 nodes"):
        load_node_data(DataSpec(source_spec, PartitionSpec("natural", 1, 2, 0), 0.1, 0), 0, 7)


def test_a_table_standardises_numeric_features_with_training_statistics(tmp_path: Path, cache: Path) -> None:
    csv = write_table_csv(tmp_path / "table.csv", count=100)
    source_spec = SourceSpec(str(csv), task="regression", target_column="y")
    source = load_source(source_spec)
    assert source.schema == Schema((3,), 0, "regression", "table")
    assert source.input_names == ("x1", "x2", "x3"), "every numeric column but the target; 'city' is text"
    pool = source.inputs(source.pool_features)
    assert torch.allclose(pool.mean(dim=0), torch.zeros(3), atol=1e-5)
    assert torch.allclose(pool.std(dim=0, unbiased=False), torch.ones(3), atol=1e-4)
    targets = source.labels(source.pool_labels)
    assert targets.dtype == torch.float32 and abs(float(targets.mean())) < 1e-5
    test = load_test_split(source_spec)
    assert len(test) == 20 and test.target_scale == pytest.approx(float(source.pool_labels.std()))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"target_column": "z"}, "target-column 'z' is not a column of dataset .*allowed: x1, x2, x3, city, y"),
        ({"target_column": "y", "feature_columns": ("x1", "city")}, "feature column 'city' .* is not numeric"),
        ({}, "no column it recognises for target-column; set target-column to one of its columns"),
        ({"target_column": "city"}, "target of dataset .* is not numeric"),
    ],
)
def test_bad_table_columns_are_one_line(tmp_path: Path, cache: Path, settings: dict, message: str) -> None:
    csv = write_table_csv(tmp_path / "table.csv", count=20)
    with pytest.raises(DataError, match=message) as raised:
        dataset_schema(SourceSpec(str(csv), task="regression", **settings))
    assert "\n" not in str(raised.value)


def test_text_class_labels_become_sorted_indices(tmp_path: Path, cache: Path) -> None:
    csv = write_table_csv(tmp_path / "table.csv", count=40)
    source = load_source(SourceSpec(str(csv), target_column="city"))
    assert source.schema.num_classes == 2 and source.class_names == ("a", "b")
    assert set(np.unique(source.pool_labels).tolist()) == {0, 1}


def _image_folder(root: Path, sizes: dict[str, tuple[int, int]]) -> Path:
    """`root/<class>/<i>.png` with RGB images of the given size per class."""
    for name, size in sizes.items():
        (root / name).mkdir(parents=True)
        for index in range(6):
            Image.new("RGB", size, (index * 40, 0, 0)).save(root / name / f"{index}.png")
    return root


def test_an_image_folder_is_read_with_torchvision_and_mixed_sizes_need_image_size(tmp_path: Path, cache: Path) -> None:
    folder = _image_folder(tmp_path / "pets", {"cat": (20, 20), "dog": (24, 16)})
    with pytest.raises(DataError, match=r"images of different sizes \(.*\); set image-size") as raised:
        dataset_schema(SourceSpec(str(folder)))
    assert "\n" not in str(raised.value) and "allowed: an integer >= 1" in str(raised.value)
    source = load_source(SourceSpec(str(folder), image_size=16))
    assert source.schema == Schema((3, 16, 16), 2, "classification", "image")
    assert source.class_names == ("cat", "dog")
    assert len(source.pool_labels) + len(source.test_labels) == 12


def test_a_csv_of_image_paths(tmp_path: Path, cache: Path) -> None:
    _image_folder(tmp_path / "images", {"0": (12, 12), "1": (12, 12)})
    lines = ["path,label"] + [f"images/{label}/{i}.png,{label}" for label in (0, 1) for i in range(6)]
    (tmp_path / "index.csv").write_text("\n".join(lines) + "\n")
    source = load_source(SourceSpec(str(tmp_path / "index.csv"), image_column="path"))
    assert source.schema == Schema((3, 12, 12), 2, "classification", "image")


def test_ambiguous_or_missing_image_columns_name_the_columns(tmp_path: Path, cache: Path) -> None:
    folder = write_cifar10_like(tmp_path / "c", num_train=10, num_test=5)
    with pytest.raises(DataError, match=r"label-column 'fine_label' is not a column .* allowed: img, label"):
        dataset_schema(SourceSpec(str(folder), label_column="fine_label"))


def test_embedded_diabetes_is_the_regression_table() -> None:
    source = load_source(SourceSpec("diabetes", task="regression"))
    assert source.schema == Schema((10,), 0, "regression", "table")
    assert len(source.pool_labels) == 354 and len(source.test_labels) == 88
    assert source.input_names[:3] == ("age", "sex", "bmi") and source.label_name == "target"


def test_an_edge_node_without_a_run_dataset_scales_by_its_own_training_split(tmp_path: Path, cache: Path) -> None:
    csv = write_table_csv(tmp_path / "node.csv", count=50)
    schema = Schema((3,), 0, "regression", "table")
    data = load_local_node_data(str(csv), SourceSpec("none", task="regression", target_column="y"), schema, 0.2, 0, "a")
    assert len(data.train) == 40 and len(data.validation) == 10
    assert torch.allclose(data.train.features.mean(dim=0), torch.zeros(3), atol=1e-5)
    assert abs(float(data.train.labels.mean())) < 1e-5 and data.train.target_scale > 1.0


def test_standard_augmentation_crops_and_flips_per_sample_reproducibly() -> None:
    batch = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    augment = augmentation("standard", (3, 8, 8))
    assert isinstance(augment, Augmentation)
    first = augment(batch, torch.Generator().manual_seed(1))
    again = augment(batch, torch.Generator().manual_seed(1))
    assert first.shape == batch.shape and torch.equal(first, again) and not torch.equal(first, batch)
    assert augmentation("none", (10,)) is None
    with pytest.raises(DataError, match="'standard' with image data"):
        augmentation("standard", (10,))
