"""A run's dataset reduced to arrays: the pool nodes share, the server's test set, and how to scale them.

Every dataset becomes a `Source`: a pool (what nodes partition among themselves), a
held-out test set (the server's central evaluation), optional natural node ids (a
`partition-by` column, or Synthetic's devices), and the statistics that turn raw
values into what a model sees, all taken from the training data:

- images: uint8 (N, C, H, W), normalised per channel with the pool's mean and
  standard deviation (MNIST's are its known training statistics, `embedded.py`);
- tables: float32 (N, F), each feature standardised with the pool's statistics;
  a regression target is standardised the same way for training;
- feature vectors (Synthetic): used as generated, as the FedProx paper does.

A dataset with no test split holds out a fixed share of its train split (20%, at
most `MAX_HELD_OUT` samples, so central evaluation stays cheap), the same for every
run and seed. Everything but the embedded sets is converted once per machine and
cached on disk (with its statistics) under a key made of the `SourceSpec` and, for
local files, every file's size and modification time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from fedapp.choices import CLASSIFICATION, REGRESSION
from fedapp.data import embedded, hub, images, rows, synthetic, tabular
from fedapp.data.cache import cache_key, cached_arrays
from fedapp.data.spec import IMAGE, TABLE, VECTOR, DataError, Schema, SourceSpec
from fedapp.data.synthetic import SyntheticSpec

NONE = "none"
HELD_OUT_SHARE = 0.2
MAX_HELD_OUT = 10_000
HELD_OUT_SEED = 1_602_05629


@dataclass(frozen=True, eq=False)
class Source:
    """A dataset as arrays, with the statistics that scale them and the names of its classes and inputs."""

    task: str
    kind: str
    pool_features: np.ndarray
    pool_labels: np.ndarray
    test_features: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    input_names: tuple[str, ...] = ()
    label_name: str = "label"
    pool_ids: np.ndarray | None = None
    feature_mean: np.ndarray | None = None
    feature_std: np.ndarray | None = None
    target_mean: float = 0.0
    target_std: float = 1.0

    @property
    def schema(self) -> Schema:
        """What a model of this dataset takes and gives."""
        num_classes = len(self.class_names) if self.task == CLASSIFICATION else 0
        return Schema(tuple(self.pool_features.shape[1:]), num_classes, self.task, self.kind)

    def inputs(self, features: np.ndarray) -> torch.Tensor:
        """Raw features (a slice of this dataset's, or a node's own) as the model's float32 inputs."""
        return scale_inputs(self.kind, features, self.feature_mean, self.feature_std)

    def labels(self, values: np.ndarray) -> torch.Tensor:
        """Class indices as int64, or targets standardised with the pool's statistics as float32."""
        return scale_labels(self.task, values, self.target_mean, self.target_std)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Every field as an array, for the on-disk cache (`from_arrays` reads them back)."""
        arrays = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None:
                arrays[field.name] = np.asarray(value)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Source:
        """The `Source` whose `to_arrays()` gave `arrays`."""
        values: dict[str, object] = dict(arrays)
        for name in ("task", "kind", "label_name"):
            values[name] = str(arrays[name])
        for name in ("class_names", "input_names"):
            values[name] = tuple(str(v) for v in arrays[name].tolist()) if name in arrays else ()
        for name in ("target_mean", "target_std"):
            values[name] = float(arrays[name])
        return cls(**values)  # type: ignore[arg-type]


def scale_inputs(kind: str, features: np.ndarray, mean: np.ndarray | None, std: np.ndarray | None) -> torch.Tensor:
    """Raw features as float32 model inputs: images normalised, table rows standardised, vectors as they are."""
    if kind == IMAGE and mean is not None and std is not None:
        return images.normalize(features, mean, std)
    if kind == TABLE and mean is not None and std is not None:
        return tabular.standardize(features, mean, std)
    return torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))


def scale_labels(task: str, values: np.ndarray, mean: float, std: float) -> torch.Tensor:
    """Class indices as int64, or targets as float32 standardised with (`mean`, `std`)."""
    if task == REGRESSION:
        return torch.from_numpy(((values.astype(np.float64) - mean) / std).astype(np.float32))
    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.int64))


def load(spec: SourceSpec | SyntheticSpec) -> Source:
    """The `Source` of `spec` (converted on the first use on this machine, then read from the cache).

    Raises
    ------
    DataError
        If the dataset cannot be read as `spec` asks.
    """
    if isinstance(spec, SyntheticSpec):
        return _synthetic(spec)
    if spec.name == NONE:
        raise DataError("dataset 'none' has no data on this machine: the server holds none and each node its own")
    if spec.name == "mnist":
        return _mnist(spec)
    version = local_version(spec.name) if hub.is_local(spec.name) else ""
    arrays = cached_arrays(f"source-{cache_key(spec, version)}", lambda: _from_rows(spec).to_arrays())
    return Source.from_arrays(arrays)


def _synthetic(spec: SyntheticSpec) -> Source:
    data = synthetic.generate(spec)
    return Source(
        task=CLASSIFICATION,
        kind=VECTOR,
        pool_features=data.pool_features,
        pool_labels=data.pool_labels,
        test_features=data.test_features,
        test_labels=data.test_labels,
        class_names=tuple(str(i) for i in range(synthetic.NUM_CLASSES)),
        pool_ids=data.pool_devices,
    )


def _mnist(spec: SourceSpec) -> Source:
    """The embedded digits (1x28x28), normalised with MNIST's training statistics."""
    if spec.task != CLASSIFICATION or spec.partition_by or spec.image_size not in (0, 28):
        raise DataError(
            "dataset 'mnist' (embedded) is 28x28 digit classification without node ids; allowed with it: "
            "task=classification, image-size 0 or 28, no partition-by"
        )
    digits, labels = embedded.load_mnist()
    test, pool = embedded.split_indices()
    return Source(
        task=CLASSIFICATION,
        kind=IMAGE,
        pool_features=digits[pool][:, None],
        pool_labels=labels[pool],
        test_features=digits[test][:, None],
        test_labels=labels[test],
        class_names=tuple(str(i) for i in range(10)),
        input_names=("image",),
        feature_mean=np.asarray([embedded.MNIST_MEAN], dtype=np.float32),
        feature_std=np.asarray([embedded.MNIST_STD], dtype=np.float32),
    )


def local_version(location: str) -> list[tuple[str, int, int]]:
    """Every file of a local dataset with its size and modification time: a changed file is a new cache entry."""
    path = Path(location)
    if not path.exists():
        raise DataError(f"dataset path {location!r} does not exist on this machine")
    return [(os.path.relpath(file, path), *_stat(file)) for file in hub.dataset_files(path)]


def _stat(file: Path) -> tuple[int, int]:
    info = file.stat()
    return info.st_size, info.st_mtime_ns


def _from_rows(spec: SourceSpec) -> Source:
    """Read the dataset's rows (hub, local files, image folder, diabetes) and reduce them to a `Source`."""
    name = spec.name
    splits = embedded.diabetes_rows() if name == "diabetes" else hub.read(name)
    columns = rows.columns_of(splits, spec, name)
    train = rows.extract(splits.train, columns, spec, name, splits.base)
    if splits.test is not None:
        test = rows.extract(splits.test, columns, spec, name, splits.base)
        pool = train
    else:
        pool, test = _held_out(train)
    if columns.kind == IMAGE and pool.features.shape[1:] != test.features.shape[1:]:
        raise DataError(
            f"dataset {name!r} has train images of shape {pool.features.shape[1:]} and test images of shape "
            f"{test.features.shape[1:]}; set image-size to resize both to one square size"
        )
    names = rows.class_names(splits.train.features[columns.label])
    (pool_labels, test_labels), class_names = rows.encode_labels(spec.task, [pool.labels, test.labels], names, name)
    if columns.kind == IMAGE:
        mean, std = images.channel_statistics(pool.features)
    else:
        mean, std = tabular.column_statistics(pool.features)
    return Source(
        task=spec.task,
        kind=columns.kind,
        pool_features=pool.features,
        pool_labels=pool_labels,
        test_features=test.features,
        test_labels=test_labels,
        class_names=class_names,
        input_names=columns.inputs,
        label_name=columns.label,
        pool_ids=_codes(pool.ids) if pool.ids is not None else None,
        feature_mean=mean,
        feature_std=std,
        target_mean=float(pool_labels.mean()) if spec.task == REGRESSION else 0.0,
        target_std=float(max(pool_labels.std(), 1e-12)) if spec.task == REGRESSION else 1.0,
    )


def _held_out(split: rows.RawSplit) -> tuple[rows.RawSplit, rows.RawSplit]:
    """(pool, test) of a dataset without a test split: a fixed share held out, the same for every run."""
    order = np.random.default_rng(HELD_OUT_SEED).permutation(len(split.labels))
    num_test = min(round(HELD_OUT_SHARE * len(order)), MAX_HELD_OUT)
    if num_test < 1 or num_test >= len(order):
        raise DataError(f"dataset has {len(order)} samples, too few to hold out a test set; allowed: at least 2")
    test, pool = np.sort(order[:num_test]), np.sort(order[num_test:])

    def take(positions: np.ndarray) -> rows.RawSplit:
        ids = split.ids[positions] if split.ids is not None else None
        return rows.RawSplit(split.features[positions], split.labels[positions], ids)

    return take(pool), take(test)


def _codes(ids: np.ndarray) -> np.ndarray:
    """Natural node ids (any values) as int64 codes 0..K-1 in the ids' sorted order."""
    _, codes = np.unique(ids.astype(str) if ids.dtype.kind == "O" else ids, return_inverse=True)
    return codes.astype(np.int64)
