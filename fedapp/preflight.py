"""Checks of a run's data and models that need the data: made before any round starts.

`RunConfig` checks every key on its own and against the others; this reads the
dataset (columns, image sizes, node ids) and builds every model the run uses once on
two zero inputs, so a missing column, a non-numeric feature, mixed image sizes, a
model that cannot take the input or a factory that does not import is one line
naming what is wrong and what is allowed, from `python -m sim` (exit code 2) or the
ServerApp, never a traceback in round 1.
"""

from __future__ import annotations

from fedapp.config import NO_DATASET, RunConfig
from fedapp.data import DataError, DataSpec, data_source, load_source, pool_size, run_schema
from fedapp.data.images import augmentation
from fedapp.models import check_model


def run_models(config: RunConfig, num_nodes: int | None = None) -> list[str]:
    """The distinct model names the run builds (`model` and every node's `client-model`), sorted."""
    return sorted({config.model, *(config.client_model_for(i) for i in range(max(num_nodes or 1, 1)))})


def check_run(config: RunConfig, num_nodes: int | None = None) -> None:
    """Read the run's data and try its models; `num_nodes` simulated nodes must each get a share.

    Raises
    ------
    DataError
        If the data cannot be read as the run asks, or cannot be split among the nodes.
    ModelError
        If a model cannot be built or imported, or cannot take the data.
    """
    schema = run_schema(config)
    for name in run_models(config, num_nodes):
        check_model(name, schema.input_shape, schema.num_outputs, config.hidden_layer_sizes)
    augmentation(config.augment, schema.input_shape)
    if config.dataset == NO_DATASET or num_nodes is None:
        return
    if config.partitioner != "natural":
        samples = pool_size(DataSpec.from_config(config))
        if num_nodes > samples:
            raise DataError(
                f"--nodes = {num_nodes} exceeds the {samples} training samples of dataset {config.dataset!r}, "
                "so some nodes would get none; allowed: <= "
                f"{samples}, or a larger dataset (run-config key 'dataset')"
            )
        return
    ids = load_source(data_source(config)).pool_ids
    if ids is None:
        raise DataError(f"partitioner 'natural' needs node ids and dataset {config.dataset!r} has none")
    available = len(set(ids[config.public_set_size :].tolist()))
    if num_nodes > available:
        raise DataError(
            f"--nodes = {num_nodes} exceeds the {available} node ids of partitioner 'natural' "
            f"(partition-by {config.partition_by or 'device'!r}); allowed: <= {available}"
        )
