"""Edge deployment without a cluster: every script's --help, node data on disk, node naming."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from flwr.app import Context, RecordDict

from deploy.__main__ import main as deploy_main
from deploy.bench import BenchSetup, bench_command
from deploy.node_data import write_node_data
from fedapp.client_app import Node
from fedapp.data import DataSpec, Schema, SourceSpec, load_local_node_data, partition_arrays, run_schema
from fedapp.data.local import load_local_dataset
from sim.console import echo
from sim.overrides import app_defaults, validated_config
from tests.helpers import APP_DIR, DEPLOY, deploy_script

SCRIPTS = sorted(path.name for path in DEPLOY.glob("*.sh") if path.name != "lib.sh")


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_deploy_script_explains_itself(name: str) -> None:
    result = deploy_script(name, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: deploy/"), result.stdout


@pytest.mark.parametrize("layout", ["parquet", "imagefolder"])
def test_node_data_on_disk_is_exactly_its_partition(tmp_path: Path, layout: str) -> None:
    folders = write_node_data(APP_DIR, tmp_path, 2, layout, ["partitioner=shard"])
    spec = DataSpec.from_config(validated_config(APP_DIR, {"partitioner": "shard"}))
    for index, folder in enumerate(folders):
        raw = load_local_dataset(folder, SourceSpec("mnist"))
        assert _samples(raw.features, raw.labels.astype(np.int64)) == _samples(*partition_arrays(spec, index, 2))
    with pytest.raises(ValueError, match="already holds files"):
        write_node_data(APP_DIR, tmp_path, 2, layout, [])


def _samples(images: np.ndarray, labels: np.ndarray) -> list[tuple[int, bytes]]:
    """The (label, pixels) pairs of a dataset, in a canonical order."""
    return sorted(zip(labels.tolist(), (image.tobytes() for image in images), strict=True))


def test_local_node_data_is_split_and_checked(tmp_path: Path) -> None:
    folder = write_node_data(APP_DIR, tmp_path, 4, "parquet", [])[0]
    mnist = Schema((1, 28, 28), 10, "classification", "image")
    data = load_local_node_data(str(folder), SourceSpec("mnist"), mnist, 0.1, 0, "node-a")
    assert len(data.train) == 900 and len(data.validation) == 100
    assert data.train.features.shape[1:] == (1, 28, 28)
    five_classes = Schema((1, 28, 28), 5, "classification", "image")
    with pytest.raises(ValueError, match=r"allowed: 0\.\.4"):
        load_local_node_data(str(folder), SourceSpec("none"), five_classes, 0.1, 0, "node-a")
    with pytest.raises(ValueError, match="run's model takes 3x32x32 images"):
        load_local_node_data(
            str(folder), SourceSpec("mnist"), Schema((3, 32, 32), 10, "classification", "image"), 0.1, 0, "a"
        )
    with pytest.raises(ValueError, match="does not exist on this node"):
        load_local_dataset(tmp_path / "missing", SourceSpec("mnist"))


def _context(node_config: dict[str, str | int]) -> Context:
    return Context(run_id=1, node_id=7, node_config=node_config, state=RecordDict(), run_config=app_defaults(APP_DIR))


def test_a_node_is_named_by_its_node_config(tmp_path: Path) -> None:
    assert Node.from_context(_context({"data-path": str(tmp_path), "node-name": "hospital-a"})).key == "hospital-a"
    assert Node.from_context(_context({"data-path": str(tmp_path)})).key == str(tmp_path)
    assert Node.from_context(_context({"partition-id": 3, "num-partitions": 10})).key == "partition-00003"
    with pytest.raises(ValueError, match="data-path"):
        Node.from_context(_context({}))


def test_node_data_of_a_regression_table_is_read_back_by_the_nodes(tmp_path: Path) -> None:
    overrides = {"task": "regression", "model": "mlp"}
    folders = write_node_data(APP_DIR, tmp_path, 2, "parquet", ["task=regression model=mlp"])
    config = validated_config(APP_DIR, overrides)
    spec = DataSpec.from_config(config)
    features, targets = partition_arrays(spec, 1, 2)
    raw = load_local_dataset(folders[1], spec.dataset)
    written = sorted(zip(raw.labels.tolist(), raw.features.tolist(), strict=True))
    assert written == sorted(zip(targets.tolist(), features.tolist(), strict=True)), "the same rows, read shuffled"
    data = load_local_node_data(str(folders[1]), spec.dataset, run_schema(config), 0.1, 0, "node-b")
    assert data.train.features.shape[1:] == (10,) and data.train.labels.dtype == torch.float32


def test_the_deploy_bench_refuses_an_unknown_superlink_state_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--superlink-state 'disk' is not allowed; allowed: file, memory"):
        bench_command(APP_DIR, [], BenchSetup(2, 1, ["warm"], "disk"), tmp_path / "bench")
    assert not (tmp_path / "bench").exists()


def test_python_m_deploy_speaks_as_deploy_and_python_m_sim_as_sim(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy_main(["node-data", "--nodes", "2", "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(line.startswith("[deploy] node ") for line in lines), lines
    echo("after")
    assert capsys.readouterr().out == "[sim] after\n", "the prefix is the running command's, only while it runs"


def test_an_edge_node_logs_which_data_it_loaded_and_how_many_samples(tmp_path: Path) -> None:
    folder = write_node_data(APP_DIR, tmp_path, 4, "parquet", [])[0]
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("flwr").addHandler(handler)
    try:
        node = Node.from_context(_context({"data-path": str(folder), "node-name": "hospital-a"}))
        node.data()
        node.data()
    finally:
        logging.getLogger("flwr").removeHandler(handler)
    lines = [record.getMessage() for record in records if "samples from" in record.getMessage()]
    assert lines == [f"[fedapp] node hospital-a: 900 training + 100 validation samples from {folder}"], "once"


@pytest.mark.parametrize(
    ("data", "refusal"),
    [
        ("{missing}", "--data: node-0's data '{missing}/node-0' does not exist"),
        ("{present},{missing}", "--data: node-1's data '{missing}' does not exist"),
        ("{present}", "--data: node-1's data '{present}/node-1' does not exist"),
        ("{present}/node-0,{present}/node-0,{present}/node-0", "--data lists 3 paths for 2 nodes"),
    ],
)
def test_the_local_cluster_refuses_node_data_that_is_not_there_before_any_work(
    tmp_path: Path, data: str, refusal: str
) -> None:
    present, missing = tmp_path / "data", tmp_path / "missing"
    (present / "node-0").mkdir(parents=True)
    paths = {"present": present, "missing": missing}
    cluster = tmp_path / "cluster"
    result = deploy_script(
        "local-cluster.sh", "up", "--nodes", "2", "--dir", str(cluster), "--data", data.format(**paths)
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert refusal.format(**paths) in result.stderr.splitlines()[0]
    assert not cluster.exists(), "refused before the cluster's folder, certificates or processes"
