"""One real plain `flwr run .`: where its outputs land, how many nodes it gets, and both trackers.

Two checkouts of the project share one local SuperLink (one port), as two clones or
worktrees on one machine do. `python -m sim run --nodes 3` in checkout A leaves the
SuperLink running; `python -m sim` in checkout B, then a plain `flwr run .` there,
must write B's relative `output-dir` under B (the project folder the SuperLink runs
in) and use the documented default federation (10 nodes), not A's folder or the
3 nodes of the last `python -m sim run`.

The same run logs to TensorBoard and to a real `mlflow server` (SQLite backend) on a
free loopback port, started here and stopped by its PID; the run reaches it over HTTP
and the test reads it back through MLflow's client. The event files are read back
with TensorBoard's own reader. Both must hold exactly the rounds of the run's
metrics.json. (Resuming into the same tracked runs is tested on both sinks in
`tests/unit/test_tracking.py`, down to the ServerApp's wiring from checkpoint to sinks.)
One run checks all of it: end-to-end runs are the test suite's scarce resource.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient
from tensorboard.backend.event_processing import event_accumulator

from fedapp.outputs import METRICS_FILE
from fedapp.tracking import round_scalars
from sim import flwr_cli
from sim.run import RunRequest, ensure_superlink
from sim.superlink import LocalSuperLink, flwr_environment, venv_executable
from tests.helpers import APP_DIR, free_port

SERVER_START_SECONDS = 120
DOCUMENTED_NODES = 10
EXPERIMENT = "e2e"


@dataclass(frozen=True)
class MlflowServer:
    """A started `mlflow server`: its URI, and how to wait until it answers."""

    uri: str
    process: subprocess.Popen[bytes]
    log: Path

    def wait_until_healthy(self) -> None:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"mlflow server exited: {self.log.read_text()[-2000:]}"
            try:
                if httpx.get(f"{self.uri}/health", timeout=1.0).is_success:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        pytest.fail(f"mlflow server did not answer within {SERVER_START_SECONDS}s: {self.log.read_text()[-2000:]}")


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[MlflowServer]:
    """A real `mlflow server` on loopback with a SQLite backend, starting. Stopped by PID at the end.

    The test waits for it only when the run needs it, so it starts while the SuperLinks do.
    """
    folder = tmp_path / "mlflow-server"
    folder.mkdir()
    port = free_port()
    command = [
        venv_executable("mlflow"), "server",
        "--backend-store-uri", f"sqlite:///{folder}/mlflow.db",
        "--default-artifact-root", str(folder / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    environment = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # its job runner costs ~10 s
    with (folder / "server.log").open("wb") as log:
        server = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=environment, start_new_session=True
        )
    try:
        yield MlflowServer(f"http://127.0.0.1:{port}", server, folder / "server.log")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.fixture
def own_superlink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalSuperLink]:
    """A Flower home and port of this test only (it restarts its SuperLink), stopped at the end."""
    monkeypatch.setenv("FLWR_HOME", str(tmp_path / "flwr-home"))
    monkeypatch.setenv("FLWR_LOCAL_SUPERLINK_HTTP_API_PORT", str(free_port()))
    link = LocalSuperLink.default()
    yield link
    link.stop()


@pytest.fixture
def other_checkout(tmp_path: Path) -> Path:
    """A second checkout of this project in another folder."""
    folder = tmp_path / "other-checkout"
    for package in ("fedapp", "strategies", "usermodels", "sim"):
        shutil.copytree(APP_DIR / package, folder / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(APP_DIR / "pyproject.toml", folder / "pyproject.toml")
    return folder


def _plain_flwr_run(checkout: Path, overrides: dict[str, Any]) -> tuple[str, str]:
    """`flwr run . --stream` typed in `checkout`, as a user would; the run's final status and its log.

    Streaming ends with the run, so nothing polls the SuperLink while the run competes for the CPU.
    """
    text = " ".join(f"{key}={json.dumps(value)}" for key, value in overrides.items())
    streamed = subprocess.run(
        [venv_executable("flwr"), "run", ".", "--stream", "-c", text],
        cwd=checkout,
        capture_output=True,
        text=True,
        env=flwr_environment(),
        timeout=600,
        check=True,
    )
    log = streamed.stdout + streamed.stderr
    started = re.search(r"Successfully started run (\d+)", log)
    assert started, log[-3000:]
    return flwr_cli.wait_finished(int(started.group(1))), log


def _tensorboard(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the event files in `logdir`, read by TensorBoard's own reader."""
    accumulator = event_accumulator.EventAccumulator(str(logdir), size_guidance={event_accumulator.SCALARS: 0})
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def _mlflow(client: MlflowClient, run_id: str, keys: set[str]) -> dict[str, list[tuple[int, float]]]:
    """Every metric's history of the MLflow run, by step."""
    return {key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key)) for key in keys}


def _expected(rounds: list[dict[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """What metrics.json says each tracked metric is, round by round."""
    series: dict[str, list[tuple[int, float]]] = {}
    for record in rounds:
        for key, value in round_scalars(record).items():
            series.setdefault(key, []).append((record["round"], value))
    return series


def _assert_same(logged: dict[str, list[tuple[int, float]]], expected: dict[str, list[tuple[int, float]]]) -> None:
    """TensorBoard holds every metric at the same steps as metrics.json, to float32 precision."""
    assert set(logged) == set(expected)
    for key, series in expected.items():
        assert [step for step, _ in logged[key]] == [step for step, _ in series], key
        assert [value for _, value in logged[key]] == pytest.approx([value for _, value in series], rel=1e-6), key


def test_a_plain_flwr_run_writes_under_its_project_with_10_nodes_and_both_trackers_hold_its_rounds(
    mlflow_server: MlflowServer, own_superlink: LocalSuperLink, other_checkout: Path
) -> None:
    # What `python -m sim run --nodes 3` does before it submits, in checkout A, then in checkout B.
    ensure_superlink(RunRequest.build(APP_DIR, [], nodes=3))
    ensure_superlink(RunRequest.build(other_checkout, [], nodes=3))
    mlflow_server.wait_until_healthy()

    run_name = f"plain-{uuid.uuid4().hex[:8]}"
    status, log = _plain_flwr_run(
        other_checkout,
        {
            "model": "2nn",
            "num-server-rounds": 1,
            "fraction-train": 0.2,  # 2 of the 10 nodes train and evaluate: a 2-node run's cost
            "fraction-evaluate": 0.2,
            "run-name": run_name,
            "tracking": "tensorboard,mlflow",
            "tracking-uri": mlflow_server.uri,
            "tracking-experiment": EXPERIMENT,
        },
    )
    misplaced = APP_DIR / "outputs" / run_name
    folder = other_checkout / "outputs" / run_name
    try:
        assert status == flwr_cli.FINISHED_OK, log[-3000:]
        written = next(path / METRICS_FILE for path in (folder, misplaced) if (path / METRICS_FILE).exists())
        metrics = json.loads(written.read_text())
        assert metrics["run"]["num_partitions"] == [DOCUMENTED_NODES]
        assert len(metrics["run"]["partition_counts"]) == 2, "training samples of the 2 nodes that trained"
        assert written.parent == folder, f"outputs not under the project that ran `flwr run .` but in {written.parent}"
        assert f"{DOCUMENTED_NODES} simulated SuperNodes" in log
        assert f"[fedapp] {DOCUMENTED_NODES} nodes connected" in log
        assert f"relative to {other_checkout}" in log
    finally:
        shutil.rmtree(misplaced, ignore_errors=True)

    identity = metrics["run"]["tracking"]
    assert identity["tensorboard"] == {"logdir": str(folder)}
    assert identity["mlflow"]["tracking_uri"] == mlflow_server.uri
    client = MlflowClient(mlflow_server.uri)
    run = client.get_run(identity["mlflow"]["run_id"])
    assert (run.info.run_name, run.info.status) == (run_name, "FINISHED")
    assert client.get_experiment(run.info.experiment_id).name == EXPERIMENT
    assert run.data.params == {key: str(value) for key, value in metrics["run"]["config"].items()}
    expected = _expected(metrics["rounds"])
    assert [step for step, _ in expected["central_accuracy"]] == [0, 1]
    assert {"federated_accuracy", "train_loss", "bytes_up", "nodes_failed", "learning_rate", "seconds"} <= set(expected)
    assert _mlflow(client, run.info.run_id, set(expected)) == expected
    artifacts = sorted(artifact.path for artifact in client.list_artifacts(run.info.run_id))
    assert artifacts == ["accuracy.png", "final_model.pt", "metrics.json"]
    _assert_same(_tensorboard(folder), expected)
