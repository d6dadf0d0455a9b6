"""Data for a run: each node's train/validation split, the central test set, the public set.

Every dataset is reduced to the same shape of data: a labelled pool that nodes
partition among themselves, a held-out test set that only the server evaluates on,
and (for distillation strategies) a public slice carved from the front of the pool
that no client trains on privately, followed by a labelled server validation slice
(FedDF's split for validating server distillation) that no client ever sees. An edge node that brings its own data
(`data-path`) splits that instead of a partition of the pool (`local.py`). Tensors
are built once per process and cached, so simulation actors that serve many nodes
and rounds never reload.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from fedapp.data import embedded, hub, local, synthetic
from fedapp.data.partition import PartitionSpec, cached_partitions, natural_partition, split_validation
from fedapp.data.synthetic import SyntheticSpec
from strategies.seeding import numpy_rng

if TYPE_CHECKING:
    from fedapp.config import RunConfig

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
NATURAL = "natural"

Source = str | SyntheticSpec
"""What a run's data comes from: a dataset name, or the parameters of a Synthetic(alpha, beta) set."""


@dataclass(frozen=True)
class LabelledSplit:
    """Features shaped (N, *input_shape) and int64 labels shaped (N,)."""

    features: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class NodeData:
    """One node's private data: what it trains on and what it evaluates on."""

    train: LabelledSplit
    validation: LabelledSplit


@dataclass(frozen=True)
class DataSpec:
    """The settings that decide which samples a node, the server and the public set get."""

    dataset: Source
    partition: PartitionSpec
    validation_fraction: float
    public_size: int
    server_validation_size: int = 0

    @property
    def reserved(self) -> int:
        """Samples at the front of the pool kept from the nodes: the public and server validation slices."""
        return self.public_size + self.server_validation_size

    @classmethod
    def from_config(cls, config: RunConfig) -> DataSpec:
        """Take the data settings of `config`, including the size of its public slice."""
        partition = PartitionSpec(
            partitioner=config.partitioner,
            dirichlet_alpha=config.dirichlet_alpha,
            classes_per_node=config.classes_per_node,
            seed=config.seed,
        )
        return cls(
            data_source(config),
            partition,
            config.validation_fraction,
            config.public_set_size,
            config.server_validation_set_size,
        )


def data_source(config: RunConfig) -> Source:
    """What `config` trains on: its dataset name, or its Synthetic(alpha, beta) parameters and seed."""
    if config.dataset == synthetic.NAME:
        return SyntheticSpec(config.synthetic_alpha, config.synthetic_beta, config.seed)
    return config.dataset


@dataclass(frozen=True)
class _Source:
    """A dataset reduced to arrays: the pool nodes share and the held-out test set.

    `pool_devices` gives each pool sample's device for data that comes in devices.
    """

    pool_features: np.ndarray
    pool_labels: np.ndarray
    test_features: np.ndarray
    test_labels: np.ndarray
    pool_devices: np.ndarray | None = None


@lru_cache(maxsize=4)
def _load_source(dataset: Source) -> _Source:
    """Load dataset `dataset` as arrays (from the on-disk cache after the first time)."""
    if isinstance(dataset, SyntheticSpec):
        data = synthetic.generate(dataset)
        return _Source(data.pool_features, data.pool_labels, data.test_features, data.test_labels, data.pool_devices)
    if dataset == synthetic.NAME:
        raise ValueError(
            "dataset 'synthetic' is drawn from synthetic-alpha, synthetic-beta and seed: pass data_source(config)"
        )
    if dataset == "mnist":
        images, labels = embedded.load_mnist()
        test, pool = embedded.split_indices()
        return _Source(images[pool], labels[pool], images[test], labels[test])
    arrays = hub.load_hub_dataset(dataset)
    return _Source(arrays["train_features"], arrays["train_labels"], arrays["test_features"], arrays["test_labels"])


def _to_tensor(features: np.ndarray) -> torch.Tensor:
    """uint8 images -> normalized float (N, 1, H, W); other features -> float32 as they are."""
    if features.dtype == np.uint8:
        images = torch.from_numpy(features).float().div_(255.0).sub_(MNIST_MEAN).div_(MNIST_STD)
        return images.unsqueeze(1)
    return torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))


def _split(features: np.ndarray, labels: np.ndarray, positions: np.ndarray) -> LabelledSplit:
    return LabelledSplit(_to_tensor(features[positions]), torch.from_numpy(labels[positions]))


def dataset_shape(dataset: Source) -> tuple[tuple[int, ...], int]:
    """Return (input shape of one sample, number of classes) of `dataset`."""
    if dataset == synthetic.NAME or isinstance(dataset, SyntheticSpec):
        return (synthetic.NUM_FEATURES,), synthetic.NUM_CLASSES
    source = _load_source(dataset)
    sample = _to_tensor(source.test_features[:1])
    return tuple(sample.shape[1:]), int(max(source.pool_labels.max(), source.test_labels.max()) + 1)


def pool_size(spec: DataSpec) -> int:
    """Number of samples the nodes share (the pool minus the public and server validation slices)."""
    return len(_load_source(spec.dataset).pool_labels) - spec.reserved


def _partition_positions(spec: DataSpec, partition_id: int, num_partitions: int) -> np.ndarray:
    """Positions in the pool of node `partition_id`'s share among `num_partitions` nodes."""
    if not 0 <= partition_id < num_partitions:
        raise ValueError(
            f"partition-id {partition_id} is outside [0, {num_partitions}) for num-partitions={num_partitions}"
        )
    source = _load_source(spec.dataset)
    if spec.reserved >= len(source.pool_labels):
        raise ValueError(
            f"public-size {spec.public_size} and distill-validation-size {spec.server_validation_size} leave no "
            f"private data: the pool of {spec.dataset!r} has {len(source.pool_labels)} samples"
        )
    if spec.partition.partitioner == NATURAL:
        if source.pool_devices is None:
            raise ValueError(f"partitioner 'natural' needs data that comes in devices; {spec.dataset!r} does not")
        positions = natural_partition(source.pool_devices[spec.reserved :], num_partitions, partition_id)
    else:
        positions = _pool_partitions(spec, num_partitions)[str(partition_id)]
    return positions + spec.reserved


@lru_cache(maxsize=4)
def _pool_partitions(spec: DataSpec, num_partitions: int) -> dict[str, np.ndarray]:
    """Every node's positions in the private pool, read from the disk cache once per process.

    A simulation actor serves many nodes; reading the archive of all partitions for
    each of them would cost it time quadratic in the number of nodes.
    """
    labels = _load_source(spec.dataset).pool_labels[spec.reserved :]
    return cached_partitions(labels, num_partitions, spec.partition)


def partition_arrays(spec: DataSpec, partition_id: int, num_partitions: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw (features, labels) of node `partition_id`'s whole share, e.g. to write it to a node's disk."""
    source = _load_source(spec.dataset)
    positions = _partition_positions(spec, partition_id, num_partitions)
    return source.pool_features[positions], source.pool_labels[positions]


@lru_cache(maxsize=1024)
def load_node_data(spec: DataSpec, partition_id: int, num_partitions: int) -> NodeData:
    """Return node `partition_id`'s train and validation splits among `num_partitions` nodes."""
    source = _load_source(spec.dataset)
    positions = _partition_positions(spec, partition_id, num_partitions)
    rng = numpy_rng(spec.partition.seed, "validation-split", partition_id)
    train, validation = split_validation(positions, spec.validation_fraction, rng)
    return NodeData(
        train=_split(source.pool_features, source.pool_labels, train),
        validation=_split(source.pool_features, source.pool_labels, validation),
    )


@lru_cache(maxsize=16)
def load_local_node_data(path: str, validation_fraction: float, seed: int, node_key: str, num_classes: int) -> NodeData:
    """Return the train and validation splits of the node's own dataset at `path` (see `local.py`).

    The validation share is drawn from the run `seed` and the node's stable key, so a
    node holds out the same samples in every round and every run with that seed.
    """
    features, labels = local.load_local_dataset(Path(path))
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"data-path {path!r} has labels {labels.min()}..{labels.max()}; the run's model has "
            f"{num_classes} classes, allowed: 0..{num_classes - 1}"
        )
    rng = numpy_rng(seed, "validation-split", node_key)
    train, validation = split_validation(np.arange(len(labels)), validation_fraction, rng)
    return NodeData(train=_split(features, labels, train), validation=_split(features, labels, validation))


@lru_cache(maxsize=4)
def load_test_split(dataset: Source) -> LabelledSplit:
    """The held-out test set of `dataset`, for the server's central evaluation."""
    source = _load_source(dataset)
    return _split(source.test_features, source.test_labels, np.arange(len(source.test_labels)))


@lru_cache(maxsize=4)
def load_public_split(spec: DataSpec) -> LabelledSplit:
    """The public slice shared by the server and the clients, with its labels.

    Federated distillation uses its features only; FedMD's transfer learning uses its
    labels, and in simulation the server scores consensus logits against them.
    """
    if spec.public_size <= 0:
        raise ValueError("this run has no public set (public-size is 0)")
    source = _load_source(spec.dataset)
    return _split(source.pool_features, source.pool_labels, np.arange(spec.public_size))


@lru_cache(maxsize=4)
def load_server_validation(spec: DataSpec) -> LabelledSplit:
    """The labelled slice after the public set that validates server distillation (may be empty)."""
    source = _load_source(spec.dataset)
    return _split(source.pool_features, source.pool_labels, np.arange(spec.public_size, spec.reserved))


def load_unlabelled_features(dataset: str) -> torch.Tensor:
    """Every training sample of `dataset` (its pool), features only: distillation data from another dataset."""
    return _to_tensor(_load_source(dataset).pool_features)
