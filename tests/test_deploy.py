"""Edge deployment: node data on disk, and a real local cluster (`deploy/local-cluster.sh`).

The cluster tests share one cluster (TLS, SuperNode authentication, 3 SuperNodes,
each on its own data folder) and run in file order: a normal run, the security
checks, a run that loses a node, and finally `down`, which must leave no process.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
from flwr.app import Context, RecordDict

from fedapp.client_app import Node
from fedapp.data import DataSpec, load_local_node_data, partition_arrays
from fedapp.data.local import load_local_dataset
from sim.flwr_cli import FINISHED_OK, FlwrCommandError
from deploy.connections import execute_on
from deploy.local_cluster import LocalCluster
from deploy.node_data import write_node_data
from sim.overrides import app_defaults, validated_config
from sim.run import RunRequest
from sim.superlink import flwr_environment
from tests.conftest import APP_DIR, flower_processes, free_port

DEPLOY = APP_DIR / "deploy"
SCRIPTS = sorted(path.name for path in DEPLOY.glob("*.sh") if path.name != "lib.sh")
NODES = 3
CONNECTION = "edge-test"


def _script(name: str, *arguments: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (the project's own scripts)
        [str(DEPLOY / name), *arguments], capture_output=True, text=True, env=flwr_environment(), timeout=timeout, check=False
    )


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_deploy_script_explains_itself(name: str) -> None:
    result = _script(name, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: deploy/"), result.stdout


@pytest.mark.parametrize("layout", ["parquet", "imagefolder"])
def test_node_data_on_disk_is_exactly_its_partition(tmp_path: Path, layout: str) -> None:
    folders = write_node_data(APP_DIR, tmp_path, 2, layout, ["partitioner=shard"])
    spec = DataSpec.from_config(validated_config(APP_DIR, {"partitioner": "shard"}))
    for index, folder in enumerate(folders):
        assert _samples(*load_local_dataset(folder)) == _samples(*partition_arrays(spec, index, 2))
    with pytest.raises(ValueError, match="already holds files"):
        write_node_data(APP_DIR, tmp_path, 2, layout, [])


def _samples(images: np.ndarray, labels: np.ndarray) -> list[tuple[int, bytes]]:
    """The (label, pixels) pairs of a dataset, in a canonical order."""
    return sorted(zip(labels.tolist(), (image.tobytes() for image in images), strict=True))


def test_local_node_data_is_split_and_checked(tmp_path: Path) -> None:
    folder = write_node_data(APP_DIR, tmp_path, 4, "parquet", [])[0]
    data = load_local_node_data(str(folder), 0.1, 0, "node-a", 10)
    assert len(data.train) == 900 and len(data.validation) == 100
    assert data.train.features.shape[1:] == (1, 28, 28)
    with pytest.raises(ValueError, match="allowed: 0..4"):
        load_local_node_data(str(folder), 0.1, 0, "node-a", 5)
    with pytest.raises(ValueError, match="does not exist on this node"):
        load_local_dataset(tmp_path / "missing")


def _context(node_config: dict[str, str | int]) -> Context:
    return Context(run_id=1, node_id=7, node_config=node_config, state=RecordDict(), run_config=app_defaults(APP_DIR))


def test_a_node_is_named_by_its_node_config(tmp_path: Path) -> None:
    assert Node.from_context(_context({"data-path": str(tmp_path), "node-name": "hospital-a"})).key == "hospital-a"
    assert Node.from_context(_context({"data-path": str(tmp_path)})).key == str(tmp_path)
    assert Node.from_context(_context({"partition-id": 3, "num-partitions": 10})).key == "partition-00003"
    with pytest.raises(ValueError, match="data-path"):
        Node.from_context(_context({}))


@pytest.fixture(scope="module")
def cluster(flower_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A TLS cluster with SuperNode authentication and 3 nodes; stopped (fully) at the end."""
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"), CONNECTION)
    cluster.up(NODES)
    yield cluster
    processes = cluster.processes()
    cluster.down()
    assert not [proc for proc in processes if _alive(proc)]


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _deploy_request(tmp_path: Path, **overrides: object) -> RunRequest:
    """A small fedavg run (logistic regression, 2 rounds) for the cluster's 3 nodes."""
    extra = {"output-dir": str(tmp_path), "model": "logreg", "num-server-rounds": 2}
    extra.update({key.replace("_", "-"): value for key, value in overrides.items()})
    return RunRequest.build(APP_DIR, [], nodes=NODES, extra=extra)


def test_cluster_runs_fedavg_over_tls_with_authenticated_nodes(cluster: LocalCluster, tmp_path: Path) -> None:
    superlink = psutil.Process(cluster.pid("superlink")).cmdline()
    assert "--enable-supernode-auth" in superlink and "--ssl-certfile" in superlink
    outcome = execute_on(_deploy_request(tmp_path, run_name="fedavg"), CONNECTION, "deploy")
    assert outcome.status == FINISHED_OK
    rounds = outcome.metrics()["rounds"]
    assert [record["round"] for record in rounds] == [0, 1, 2]
    for record in rounds[1:]:
        assert record["nodes_sampled"] == record["nodes_replied"] == record["updates_aggregated"] == NODES
        assert record["nodes_failed"] == 0 and record["failed_nodes"] == []
        assert record["evaluation_nodes"] == NODES
    assert rounds[2]["central_accuracy"] > rounds[0]["central_accuracy"] + 0.3


def test_a_supernode_with_an_unregistered_key_is_refused(cluster: LocalCluster, tmp_path: Path) -> None:
    _script("make-node-keys.sh", "--out", str(tmp_path), "rogue")
    code, log = _start_node(cluster, tmp_path, "--ca", str(cluster.folder / "certs" / "ca.crt"), "--key", str(tmp_path / "rogue"))
    assert code != 0
    assert "Failed to activate SuperNode" in log


def test_a_supernode_without_the_federation_ca_cannot_connect(cluster: LocalCluster, tmp_path: Path) -> None:
    _script("make-certs.sh", "--out", str(tmp_path / "other-ca"))
    key = cluster.folder / "keys" / "node-0"
    code, log = _start_node(cluster, tmp_path, "--ca", str(tmp_path / "other-ca" / "ca.crt"), "--key", str(key))
    assert code != 0
    assert "CERTIFICATE_VERIFY_FAILED" in log


def _start_node(cluster: LocalCluster, tmp_path: Path, *security: str) -> tuple[int, str]:
    """Run one more SuperNode against the cluster's SuperLink until it gives up; return its exit code and log.

    The log goes to a file, not a pipe: the SuperNode's SuperExec child leaves only once
    its parent is reaped, which a reader waiting for the pipe to close would never do.
    """
    log = tmp_path / "supernode.log"
    with log.open("w") as output:
        result = subprocess.run(  # noqa: S603 (the project's own script)
            [
                str(DEPLOY / "start-supernode.sh"),
                "--superlink",
                f"127.0.0.1:{_superlink_port(cluster)}",
                "--port",
                str(free_port()),
                "--data-path",
                str(cluster.data_folder(NODES) / "node-0"),
                "--executor",
                "flower",
                *security,
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=flwr_environment(),
            timeout=120,
            check=False,
        )
    return result.returncode, log.read_text()


def _superlink_port(cluster: LocalCluster) -> int:
    cmdline = psutil.Process(cluster.pid("superlink")).cmdline()
    return int(cmdline[cmdline.index("--port") + 1])


def test_an_insecure_cli_connection_to_the_tls_superlink_says_why_it_fails(cluster: LocalCluster, tmp_path: Path) -> None:
    address = f"127.0.0.1:{_superlink_port(cluster)}"
    assert _script("add-connection.sh", "--name", "edge-insecure", "--address", address, "--insecure").returncode == 0
    with pytest.raises(FlwrCommandError) as failure:
        execute_on(_deploy_request(tmp_path), "edge-insecure", "deploy")
    message = str(failure.value)
    assert "Connection to the SuperLink is unavailable" in message
    assert f"likely cause: the SuperLink at {address} serves TLS, but connection 'edge-insecure' is insecure" in message


def test_a_node_killed_mid_run_fails_that_round_and_the_run_completes(cluster: LocalCluster, tmp_path: Path) -> None:
    request = _deploy_request(
        tmp_path, run_name="killed", round_timeout=20.0, fraction_evaluate=0.0, min_available_nodes=2, min_train_nodes=2
    )
    killed = _kill_on_first_train_message(psutil.Process(cluster.pid("node-2")), cluster.log("node-2"))
    outcome = execute_on(request, CONNECTION, "deploy")
    assert killed.is_set(), "node-2 never received its round-1 train message"
    assert outcome.status == FINISHED_OK
    rounds = outcome.metrics()["rounds"]
    assert rounds[1]["nodes_sampled"] == NODES
    assert rounds[1]["failed_nodes"] == ["node-2"] and rounds[1]["nodes_failed"] == 1
    assert rounds[1]["nodes_replied"] == rounds[1]["updates_aggregated"] == 2
    assert rounds[2]["nodes_replied"] == rounds[2]["updates_aggregated"] == 2
    assert rounds[2]["central_accuracy"] > rounds[0]["central_accuracy"]


def _kill_on_first_train_message(victim: psutil.Process, log: Path) -> threading.Event:
    """SIGKILL `victim` and its children (a power cut) as soon as its log shows a new train message."""
    killed = threading.Event()
    offset = log.stat().st_size

    def watch() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with log.open() as file:
                file.seek(offset)
                if "Receiving: train message" in file.read():
                    break
            time.sleep(0.1)
        else:
            return
        for proc in [victim, *victim.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        killed.set()

    threading.Thread(target=watch, daemon=True).start()
    return killed


def test_down_stops_every_process_the_cluster_started(cluster: LocalCluster) -> None:
    processes = cluster.processes()
    port = _superlink_port(cluster)
    assert len(processes) >= 1 + 2 * (NODES - 1)
    cluster.down()
    assert not [proc.pid for proc in processes if _alive(proc)]
    assert not flower_processes(port)
    assert not list(cluster.run_folder.glob("*.pid"))
