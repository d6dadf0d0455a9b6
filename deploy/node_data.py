"""`python -m deploy node-data`: write a share of the run's dataset to each node's own folder.

For trying edge deployment on one machine (or copying to real devices): node `i` of
`N` gets exactly partition `i` of `N` that a simulation with the same run config
(`dataset`, `partitioner`, `seed`, ...) would give it, written as a local dataset that
a SuperNode started with `--node-config 'data-path="<out>/node-<i>"'` trains on, under
the column names the run reads (images as PNG in parquet or an image folder, table
rows as parquet).
"""

from __future__ import annotations

from pathlib import Path

from fedapp.data import DataSpec, load_source, partition_arrays
from fedapp.data.local import write_local_dataset
from sim.console import echo
from sim.overrides import parse_overrides, validated_config


def node_folder(out: Path, index: int) -> Path:
    """The data folder of node `index` under `out`."""
    return out / f"node-{index}"


def write_node_data(app_dir: Path, out: Path, nodes: int, layout: str, override_texts: list[str]) -> list[Path]:
    """Write partition `i` of `nodes` to `out/node-<i>` for every node; return the folders."""
    if nodes < 1:
        raise ValueError(f"--nodes = {nodes} is not allowed; allowed: an integer >= 1")
    config = validated_config(app_dir, parse_overrides(override_texts))
    spec = DataSpec.from_config(config)
    source = load_source(spec.dataset)
    folders = []
    for index in range(nodes):
        features, labels = partition_arrays(spec, index, nodes)
        folder = write_local_dataset(
            node_folder(out.absolute(), index), features, labels, layout, source.input_names, source.label_name
        )
        echo(f"node {index}: {len(labels)} samples in {folder}")
        folders.append(folder)
    return folders
