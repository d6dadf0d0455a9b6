"""Edge deployment end to end: a real local cluster (`deploy/local-cluster.sh`) with TLS and authenticated nodes."""

from __future__ import annotations

import contextlib
import re
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from deploy.connections import execute_on
from deploy.local_cluster import LocalCluster
from deploy.node_data import write_node_data
from sim.flwr_cli import FINISHED_OK, FlwrCommandError
from sim.run import RunRequest
from sim.superlink import flwr_environment
from strategies.round_screening import NORM_OUTLIER
from tests.helpers import APP_DIR, DEPLOY, deploy_script, flower_processes, free_port

pytestmark = pytest.mark.slow  # a TLS cluster of real processes: `make test-slow` and CI run it

NODES = 3
CONNECTION = "edge-test"
PROXY = shutil.which("nginx") is not None  # the cluster runs behind nginx (start-superlink.sh --public-address)


@pytest.fixture(scope="module")
def cluster(flower_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A TLS cluster with SuperNode authentication and 3 nodes; stopped (fully) at the end.

    The nodes train on data given to `up` (`--data`), written here rather than by `up`,
    and reach the SuperLink through nginx where nginx is installed (`--proxy`).
    """
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"), CONNECTION)
    data = tmp_path_factory.mktemp("node-data")
    write_node_data(APP_DIR, data, NODES, "parquet", [])
    cluster.up(NODES, data=data, proxy=PROXY)
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


def test_cluster_runs_fedavg_over_tls_with_authenticated_nodes_and_a_server_without_data(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    """`dataset = "none"`: the nodes train on their data-path, scaled by their own statistics; no central evaluation.

    (A deployment with central evaluation is the killed-node run below.)
    """
    superlink = psutil.Process(cluster.pid("superlink")).cmdline()
    assert "--enable-supernode-auth" in superlink and "--ssl-certfile" in superlink
    request = _deploy_request(tmp_path, run_name="fedavg", dataset="none", input_shape="1x28x28", num_classes=10)
    outcome = execute_on(request, CONNECTION, "deploy")
    assert outcome.status == FINISHED_OK
    metrics = outcome.metrics()
    assert metrics["run"]["central_evaluation"].startswith("off: dataset = 'none'")
    rounds = metrics["rounds"]
    assert [record["round"] for record in rounds] == [0, 1, 2]
    assert not any(key.startswith("central_") for record in rounds for key in record)
    for record in rounds[1:]:
        assert record["nodes_sampled"] == record["nodes_replied"] == record["updates_aggregated"] == NODES
        assert record["nodes_failed"] == 0 and record["failed_nodes"] == []
        assert record["evaluation_nodes"] == NODES
    assert rounds[2]["federated_accuracy"] > 0.5, "learns far past chance (0.1) on the nodes' own data"
    for index in range(NODES):
        loaded = _loaded_data_lines(cluster, index)
        assert loaded and all(f"from {_node_data(cluster, index)}" in line for line in loaded), loaded
        assert metrics["run"]["partition_counts"][f"node-{index}"] == int(loaded[-1].split(": ")[-1].split()[0])


def test_an_attacking_supernode_is_rejected_and_the_run_completes(cluster: LocalCluster, tmp_path: Path) -> None:
    """node-1 runs the scale attack (its update x 1e6) from its own ClientApp; the default screen rejects it."""
    request = _deploy_request(
        tmp_path, run_name="attacked", num_server_rounds=1, attack="scale", attack_scale=1e6, attackers="node-1"
    )
    outcome = execute_on(request, CONNECTION, "deploy")
    assert outcome.status == FINISHED_OK
    metrics = outcome.metrics()
    assert metrics["run"]["attack"]["attackers"] == ["node-1"]
    record = metrics["rounds"][1]
    assert [(r["node"], r["reason"]) for r in record["rejected_updates"]] == [("node-1", NORM_OUTLIER)]
    assert record["updates_aggregated"] == NODES - 1
    assert record["central_accuracy"] > metrics["rounds"][0]["central_accuracy"]
    assert any("attacker" in line.lower() for line in cluster.log("node-1").read_text().splitlines())


def _node_data(cluster: LocalCluster, index: int) -> Path:
    """The data folder node `index` was started on (the `data-path` in its SuperNode's node config)."""
    cmdline = " ".join(psutil.Process(cluster.pid(f"node-{index}")).cmdline())
    found = re.search(r'data-path="([^"]+)"', cmdline)
    assert found, cmdline
    return Path(found.group(1))


def _loaded_data_lines(cluster: LocalCluster, index: int) -> list[str]:
    """The lines in node `index`'s log saying which data it loaded and how many samples."""
    return [line for line in cluster.log(f"node-{index}").read_text().splitlines() if "samples from" in line]


def test_a_supernode_with_an_unregistered_key_is_refused(cluster: LocalCluster, tmp_path: Path) -> None:
    deploy_script("make-node-keys.sh", "--out", str(tmp_path), "rogue")
    code, log = _start_node(
        cluster, tmp_path, "--ca", str(cluster.folder / "certs" / "ca.crt"), "--key", str(tmp_path / "rogue")
    )
    assert code != 0
    assert "Failed to activate SuperNode" in log


def test_a_supernode_without_the_federation_ca_cannot_connect(cluster: LocalCluster, tmp_path: Path) -> None:
    deploy_script("make-certs.sh", "--out", str(tmp_path / "other-ca"))
    key = cluster.folder / "keys" / "node-0"
    code, log = _start_node(cluster, tmp_path, "--ca", str(tmp_path / "other-ca" / "ca.crt"), "--key", str(key))
    assert code != 0
    assert "certificate verify failed: the SuperLink's certificate is not signed by" in log


@pytest.mark.skipif(
    not PROXY, reason="nginx is not installed (Debian: apt-get install nginx); the cluster runs without it"
)
def test_behind_the_proxy_only_the_operator_reaches_the_control_api_and_the_nodes_only_the_fleet_api(
    cluster: LocalCluster,
) -> None:
    """The SuperLink listens on loopback only; nginx on the public side asks Control for the operator's certificate.

    (The nodes connect through nginx: the fedavg run above trains through it.)
    """
    certs, proxy = cluster.folder / "certs", cluster.fleet_port()
    superlink = psutil.Process(cluster.pid("superlink")).cmdline()
    assert superlink[superlink.index("--host") + 1] == "127.0.0.1"
    for index in range(NODES):
        node = psutil.Process(cluster.pid(f"node-{index}")).cmdline()
        assert node[node.index("--superlink") + 1] == f"127.0.0.1:{proxy}"
    assert "who can submit runs: clients on this host" in cluster.log("superlink").read_text()

    def post(path: str, client: str | None) -> int:
        context = ssl.create_default_context(cafile=certs / "ca.crt")
        if client is not None:
            context.load_cert_chain(certs / f"{client}.crt", certs / f"{client}.key")
        headers = {"Content-Type": "application/protobuf"}
        return httpx.post(f"https://127.0.0.1:{proxy}{path}", headers=headers, verify=context, timeout=10).status_code

    assert post("/v1/control/list-runs", None) == 403, "ca.crt alone is not enough to submit, stop or list runs"
    assert post("/v1/control/list-runs", "superlink") == 400, "a server certificate is no client certificate"
    assert post("/v1/control/list-runs", "operator") == 200
    assert post("/v1/runtime/acquire-task", "operator") == 404, "the Runtime API stays on the SuperLink's host"


def _start_node(cluster: LocalCluster, tmp_path: Path, *security: str) -> tuple[int, str]:
    """Run one more SuperNode against the cluster's SuperLink until it gives up; return its exit code and log.

    The log goes to a file, not a pipe: the SuperNode's SuperExec child leaves only once
    its parent is reaped, which a reader waiting for the pipe to close would never do.
    """
    log = tmp_path / "supernode.log"
    with log.open("w") as output:
        result = subprocess.run(
            [
                str(DEPLOY / "start-supernode.sh"),
                "--superlink",
                f"127.0.0.1:{_superlink_port(cluster)}",
                "--port",
                str(free_port()),
                "--data-path",
                str(_node_data(cluster, 0)),
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


def test_an_insecure_cli_connection_to_the_tls_superlink_says_why_it_fails(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    address = f"127.0.0.1:{_superlink_port(cluster)}"
    assert (
        deploy_script("add-connection.sh", "--name", "edge-insecure", "--address", address, "--insecure").returncode
        == 0
    )
    with pytest.raises(FlwrCommandError) as failure:
        execute_on(_deploy_request(tmp_path), "edge-insecure", "deploy")
    message = str(failure.value)
    assert "Connection to the SuperLink is unavailable" in message
    assert f"likely cause: the SuperLink at {address} serves TLS, but connection 'edge-insecure' is insecure" in message


def test_seeded_dp_noise_is_refused_on_nodes_with_their_own_data(
    cluster: LocalCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = _deploy_request(tmp_path, run_name="seeded", dp="server-fixed", dp_noise="seeded-insecure")
    outcome = execute_on(request, CONNECTION, "deploy")
    assert outcome.status != FINISHED_OK
    assert (
        "run-config key 'dp-noise' = 'seeded-insecure' is not allowed with nodes that train on their own data"
        in capsys.readouterr().out
    )
    assert not (outcome.folder / "metrics.json").exists(), "refused before round 0"


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


def test_a_superlink_with_its_state_in_memory_runs_a_federation_and_leaves_no_database(
    flower_home: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """`--superlink-in-memory`; also each warm executor listens on its doorbell, removed when its node stops."""
    memory = LocalCluster(tmp_path_factory.mktemp("memory-cluster"), "edge-memory-test")
    memory.up(2, superlink_in_memory=True)
    try:
        assert "--database" not in psutil.Process(memory.pid("superlink")).cmdline()
        executors = [proc.cmdline() for proc in memory.processes() if "deploy.warm_executor" in proc.cmdline()]
        doorbells = [Path(command[command.index("--doorbell") + 1]) for command in executors]
        assert len(doorbells) == 2 and all(bell.is_fifo() for bell in doorbells)
        request = RunRequest.build(
            APP_DIR, [], nodes=2, extra={"output-dir": str(tmp_path), "model": "logreg", "num-server-rounds": 1}
        )
        outcome = execute_on(request, "edge-memory-test", "deploy")
        assert outcome.status == FINISHED_OK
        assert outcome.metrics()["rounds"][1]["updates_aggregated"] == 2
        assert not list((memory.folder / "superlink").glob("state.db*"))
    finally:
        memory.down()
    deadline = time.monotonic() + 10
    while any(bell.parent.exists() for bell in doorbells) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [bell for bell in doorbells if bell.parent.exists()]
