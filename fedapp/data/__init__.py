"""Data for a run: each node's train/validation split, the central test set, the public set.

Every dataset is reduced to the same shape of data (`sources.py`): a labelled pool
that nodes partition among themselves, a held-out test set that only the server
evaluates on, and (for distillation strategies) a public slice carved from the front
of the pool that no client trains on privately, followed by a labelled server
validation slice (FedDF's split for validating server distillation) that no client
ever sees. An edge node that brings its own data (`data-path`) splits that instead of
a partition of the pool (`local.py`), and scales it with the run dataset's training
statistics (or its own, when the run has no dataset: `dataset = "none"`). Tensors are
built once per process and cached, so simulation actors that serve many nodes and
rounds never reload.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from fedapp.choices import CLASSIFICATION, REGRESSION
from fedapp.data import images, local, rows, sources, synthetic, tabular
from fedapp.data.partition import NATURAL, PartitionSpec, cached_partitions, split_validation
from fedapp.data.spec import IMAGE, TABLE, DataError, Schema, SourceSpec
from fedapp.data.synthetic import SyntheticSpec
from strategies.seeding import numpy_rng

if TYPE_CHECKING:
    from fedapp.config import RunConfig

__all__ = [
    "DataError",
    "DataSpec",
    "DatasetId",
    "LabelledSplit",
    "NodeData",
    "Schema",
    "SourceSpec",
    "data_source",
    "dataset_schema",
    "load_local_node_data",
    "load_node_data",
    "load_public_split",
    "load_server_validation",
    "load_source",
    "load_test_split",
    "load_unlabelled_features",
    "partition_arrays",
    "pool_size",
    "run_schema",
]

NONE = sources.NONE

DatasetId = SourceSpec | SyntheticSpec
"""What a run's data comes from: a dataset and how to read it, or the parameters of a Synthetic(alpha, beta) set."""


@dataclass(frozen=True)
class LabelledSplit:
    """Inputs shaped (N, *input_shape) and labels shaped (N,): int64 classes, or float32 standardised targets.

    A regression split also says how its standardised targets map back to the target's
    units (target = label * `target_scale` + `target_offset`), for RMSE and MAE.
    """

    features: torch.Tensor
    labels: torch.Tensor
    target_offset: float = 0.0
    target_scale: float = 1.0

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

    dataset: DatasetId
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


def data_source(config: RunConfig) -> DatasetId:
    """What `config` trains on: its dataset and columns, or its Synthetic(alpha, beta) parameters and seed."""
    if config.dataset == synthetic.NAME:
        return SyntheticSpec(config.synthetic_alpha, config.synthetic_beta, config.seed)
    return SourceSpec(
        name=config.dataset,
        task=config.task,
        image_column=config.image_column,
        label_column=config.label_column,
        target_column=config.target_column,
        feature_columns=config.feature_column_names,
        image_size=config.image_size,
        partition_by=config.partition_by,
    )


@lru_cache(maxsize=4)
def load_source(dataset: DatasetId) -> sources.Source:
    """The arrays of `dataset` (from the on-disk cache after the first time on this machine)."""
    return sources.load(dataset)


def dataset_schema(dataset: DatasetId) -> Schema:
    """The input shape, classes and task of `dataset`."""
    return load_source(dataset).schema


def run_schema(config: RunConfig) -> Schema:
    """What the run's models take and give: the dataset's, or `input-shape`/`num-classes` with `dataset = "none"`."""
    if config.dataset == NONE:
        kind = IMAGE if len(config.input_dimensions) == 3 else TABLE
        num_classes = config.num_classes if config.task == CLASSIFICATION else 0
        return Schema(config.input_dimensions, num_classes, config.task, kind)
    return dataset_schema(data_source(config))


def _split(source: sources.Source, features: np.ndarray, labels: np.ndarray, positions: np.ndarray) -> LabelledSplit:
    return LabelledSplit(
        source.inputs(features[positions]),
        source.labels(labels[positions]),
        source.target_mean,
        source.target_std,
    )


def pool_size(spec: DataSpec) -> int:
    """Number of samples the nodes share (the pool minus the public and server validation slices)."""
    return len(load_source(spec.dataset).pool_labels) - spec.reserved


def _partition_positions(spec: DataSpec, partition_id: int, num_partitions: int) -> np.ndarray:
    """Positions in the pool of node `partition_id`'s share among `num_partitions` nodes."""
    if not 0 <= partition_id < num_partitions:
        raise ValueError(
            f"partition-id {partition_id} is outside [0, {num_partitions}) for num-partitions={num_partitions}"
        )
    source = load_source(spec.dataset)
    if spec.reserved >= len(source.pool_labels):
        raise ValueError(
            f"public-size {spec.public_size} and distill-validation-size {spec.server_validation_size} leave no "
            f"private data: the pool of {_name(spec.dataset)!r} has {len(source.pool_labels)} samples"
        )
    if spec.partition.partitioner == NATURAL and source.pool_ids is None:
        raise DataError(
            f"partitioner 'natural' needs node ids; {_name(spec.dataset)!r} has none: set partition-by to the "
            "column that names each sample's node"
        )
    return _pool_partitions(spec, num_partitions)[str(partition_id)] + spec.reserved


def _name(dataset: DatasetId) -> str:
    return synthetic.NAME if isinstance(dataset, SyntheticSpec) else dataset.name


@lru_cache(maxsize=4)
def _pool_partitions(spec: DataSpec, num_partitions: int) -> dict[str, np.ndarray]:
    """Every node's positions in the private pool, read from the disk cache once per process.

    A simulation actor serves many nodes; reading the archive of all partitions for
    each of them would cost it time quadratic in the number of nodes.
    """
    source = load_source(spec.dataset)
    labels = source.pool_labels[spec.reserved :]
    ids = source.pool_ids[spec.reserved :] if source.pool_ids is not None else None
    return cached_partitions(labels, num_partitions, spec.partition, ids)


def partition_arrays(spec: DataSpec, partition_id: int, num_partitions: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw (features, labels) of node `partition_id`'s whole share, e.g. to write it to a node's disk.

    Labels are class indices, or targets in their own units (regression).
    """
    source = load_source(spec.dataset)
    positions = _partition_positions(spec, partition_id, num_partitions)
    return source.pool_features[positions], source.pool_labels[positions]


@lru_cache(maxsize=1024)
def load_node_data(spec: DataSpec, partition_id: int, num_partitions: int) -> NodeData:
    """Return node `partition_id`'s train and validation splits among `num_partitions` nodes."""
    source = load_source(spec.dataset)
    positions = _partition_positions(spec, partition_id, num_partitions)
    rng = numpy_rng(spec.partition.seed, "validation-split", partition_id)
    train, validation = split_validation(positions, spec.validation_fraction, rng)
    return NodeData(
        train=_split(source, source.pool_features, source.pool_labels, train),
        validation=_split(source, source.pool_features, source.pool_labels, validation),
    )


@lru_cache(maxsize=16)
def load_local_node_data(
    path: str, dataset: SourceSpec, schema: Schema, validation_fraction: float, seed: int, node_key: str
) -> NodeData:
    """Return the train and validation splits of the node's own dataset at `path` (see `local.py`).

    The node reads its files with the run's columns and image size and scales them with
    the run dataset's training statistics, so it feeds the model what the server and
    every other node do; with `dataset = "none"` there is no run dataset, and the node
    uses the statistics of its own training split. The validation share is drawn from
    the run `seed` and the node's stable key, so a node holds out the same samples in
    every round and every run with that seed.
    """
    raw = local.load_local_dataset(Path(path), dataset)
    if raw.features.shape[1:] != schema.input_shape:
        raise DataError(
            f"data-path {path!r} gives inputs of shape {raw.features.shape[1:]}; the run's model takes "
            f"{schema.describe_input()} (allowed: that shape; set image-size to resize images)"
        )
    run = load_source(dataset) if dataset.name != NONE else None
    rng = numpy_rng(seed, "validation-split", node_key)
    train, validation = split_validation(np.arange(len(raw.labels)), validation_fraction, rng)
    source = _node_source(raw, schema, run, train, path)
    return NodeData(
        train=_split(source, source.pool_features, source.pool_labels, train),
        validation=_split(source, source.pool_features, source.pool_labels, validation),
    )


def _node_source(
    raw: rows.RawSplit, schema: Schema, run: sources.Source | None, train: np.ndarray, path: str
) -> sources.Source:
    """A node's own data as a `Source` scaled like the run's (or by its own training split without a run dataset)."""
    if schema.task == REGRESSION:
        (labels,), names = rows.encode_labels(REGRESSION, [raw.labels], None, path)
    else:
        names = run.class_names if run is not None else tuple(str(i) for i in range(schema.num_classes))
        labels = rows.to_run_classes(raw.labels, names, path)
    if run is not None:
        mean, std = run.feature_mean, run.feature_std
        target_mean, target_std = run.target_mean, run.target_std
    else:
        statistics = images.channel_statistics if schema.kind == IMAGE else tabular.column_statistics
        mean, std = statistics(raw.features[train])
        target_mean = float(labels[train].mean()) if schema.task == REGRESSION else 0.0
        target_std = float(max(labels[train].std(), 1e-12)) if schema.task == REGRESSION else 1.0
    return sources.Source(
        task=schema.task,
        kind=schema.kind,
        pool_features=raw.features,
        pool_labels=labels,
        test_features=raw.features[:0],
        test_labels=labels[:0],
        class_names=names,
        feature_mean=mean,
        feature_std=std,
        target_mean=target_mean,
        target_std=target_std,
    )


@lru_cache(maxsize=4)
def load_test_split(dataset: DatasetId) -> LabelledSplit:
    """The held-out test set of `dataset`, for the server's central evaluation."""
    source = load_source(dataset)
    return _split(source, source.test_features, source.test_labels, np.arange(len(source.test_labels)))


@lru_cache(maxsize=4)
def load_public_split(spec: DataSpec) -> LabelledSplit:
    """The public slice shared by the server and the clients, with its labels.

    Federated distillation uses its features only; FedMD's transfer learning uses its
    labels, and in simulation the server scores consensus logits against them.
    """
    if spec.public_size <= 0:
        raise ValueError("this run has no public set (public-size is 0)")
    source = load_source(spec.dataset)
    return _split(source, source.pool_features, source.pool_labels, np.arange(spec.public_size))


@lru_cache(maxsize=4)
def load_server_validation(spec: DataSpec) -> LabelledSplit:
    """The labelled slice after the public set that validates server distillation (may be empty)."""
    source = load_source(spec.dataset)
    return _split(source, source.pool_features, source.pool_labels, np.arange(spec.public_size, spec.reserved))


def load_unlabelled_features(dataset: DatasetId, run_dataset: DatasetId) -> torch.Tensor:
    """Every training sample of `dataset` (its pool), features only: distillation data from another dataset.

    Scaled with `run_dataset`'s training statistics, as a node's own data is: the run's
    models take inputs normalised like the run's data.
    """
    return load_source(run_dataset).inputs(load_source(dataset).pool_features)
