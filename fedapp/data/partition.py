"""Partitioning a labelled pool across nodes with flwr-datasets partitioners.

The pool is handed to the partitioner as a label-only `datasets.Dataset` with a
`position` column, so partitioning never copies pixels; the result is each node's
positions into the pool. The dataset is shuffled with the run's seed first (bare
partitioners keep the order they are given, and MNIST here is sorted by label).

- `iid`: `IidPartitioner`, equal random shares.
- `dirichlet`: `DirichletPartitioner` over labels with concentration `dirichlet-alpha`.
- `shard`: the FedAvg paper's pathological split, as `PathologicalPartitioner` with
  `classes-per-node` labels per node, assigned so that every label is used.
- `natural`: data whose samples belong to natural nodes (a `partition-by` column such
  as FEMNIST's `writer_id`, or Synthetic(alpha, beta)'s devices) keeps them, through
  `NaturalIdPartitioner`: with as many nodes as ids, the i-th id in sorted order is
  node i; with fewer nodes than ids, node i holds the ids of rank i, i + n, i + 2n, ...
  (the partitioner then splits by that group). flwr-datasets' own
  `GroupedNaturalIdPartitioner` is not used because it makes n groups only when the
  number of ids happens to fit its group size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fedapp.data.cache import cache_key, cached_arrays
from strategies.seeding import derive_seed

if TYPE_CHECKING:
    from flwr_datasets.partitioner import Partitioner

NATURAL = "natural"


@dataclass(frozen=True)
class PartitionSpec:
    """How to split a pool: the partitioner, its parameters and the seed."""

    partitioner: str
    dirichlet_alpha: float
    classes_per_node: int
    seed: int


def make_partitioner(spec: PartitionSpec, num_partitions: int, pool_size: int) -> Partitioner:
    """Build the flwr-datasets partitioner named by `spec` for `num_partitions` nodes."""
    from flwr_datasets.partitioner import (  # noqa: PLC0415 (heavy import, only on a cache miss)
        DirichletPartitioner,
        IidPartitioner,
        PathologicalPartitioner,
    )

    seed = derive_seed(spec.seed, "partitioner") % 2**32
    if spec.partitioner == "iid":
        return IidPartitioner(num_partitions=num_partitions)
    if spec.partitioner == "dirichlet":
        return DirichletPartitioner(
            num_partitions=num_partitions,
            partition_by="label",
            alpha=spec.dirichlet_alpha,
            min_partition_size=max(1, min(10, pool_size // num_partitions // 2)),
            self_balancing=True,
            seed=seed,
        )
    if spec.partitioner == "shard":
        return PathologicalPartitioner(
            num_partitions=num_partitions,
            partition_by="label",
            num_classes_per_partition=spec.classes_per_node,
            class_assignment_mode="first-deterministic",
            seed=seed,
        )
    raise ValueError(f"unknown partitioner {spec.partitioner!r}; allowed: iid, dirichlet, shard, {NATURAL}")


def partition_pool(labels: np.ndarray, num_partitions: int, spec: PartitionSpec) -> list[np.ndarray]:
    """Return, for each of `num_partitions` nodes, its sorted positions into `labels`."""
    from datasets import Dataset  # noqa: PLC0415 (heavy import, only on a cache miss)

    pool = Dataset.from_dict({"label": labels, "position": np.arange(len(labels))})
    pool = pool.shuffle(seed=derive_seed(spec.seed, "partition-shuffle") % 2**32)
    partitioner = make_partitioner(spec, num_partitions, len(labels))
    partitioner.dataset = pool
    return [np.sort(np.asarray(partitioner.load_partition(i)["position"])) for i in range(num_partitions)]


def cached_partitions(
    labels: np.ndarray, num_partitions: int, spec: PartitionSpec, ids: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Positions of every node (keyed by its partition id as text), computed once per machine.

    `ids` (each sample's natural node id) are what partitioner `natural` splits by.
    """
    if spec.partitioner == NATURAL:
        if ids is None:
            raise ValueError("partitioner 'natural' needs each sample's node id (partition-by)")
        name = f"partitions-{cache_key(spec, num_partitions, ids.tobytes())}"
        return cached_arrays(
            name, lambda: {str(i): part for i, part in enumerate(natural_partitions(ids, num_partitions))}
        )
    name = f"partitions-{cache_key(spec, num_partitions, labels.tobytes())}"
    return cached_arrays(
        name,
        lambda: {str(i): part for i, part in enumerate(partition_pool(labels, num_partitions, spec))},
    )


def natural_partitions(ids: np.ndarray, num_partitions: int) -> list[np.ndarray]:
    """Every node's sorted positions when nodes are natural ids, grouped round-robin by rank if ids outnumber nodes.

    Raises
    ------
    ValueError
        If there are more nodes than ids (some node would hold no data).
    """
    from datasets import Dataset  # noqa: PLC0415 (heavy import, only on a cache miss)
    from flwr_datasets.partitioner import NaturalIdPartitioner  # noqa: PLC0415

    _, ranks = np.unique(ids, return_inverse=True)
    num_ids = int(ranks.max()) + 1 if len(ranks) else 0
    if num_partitions > num_ids:
        raise ValueError(
            f"partitioner 'natural' has {num_ids} node ids for {num_partitions} nodes; allowed: at most {num_ids} nodes"
        )
    pool = Dataset.from_dict({"node": ranks % num_partitions, "position": np.arange(len(ids))})
    partitioner = NaturalIdPartitioner(partition_by="node")
    partitioner.dataset = pool
    return [np.sort(np.asarray(partitioner.load_partition(i)["position"])) for i in range(num_partitions)]


def split_validation(positions: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split a node's positions into (train, validation), keeping at least one for training."""
    shuffled = rng.permutation(positions)
    num_validation = min(int(len(shuffled) * fraction), len(shuffled) - 1)
    return np.sort(shuffled[num_validation:]), np.sort(shuffled[:num_validation])
