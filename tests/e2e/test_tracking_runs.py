"""Tracking end to end: a real run logs to TensorBoard and to a real `mlflow server`.

The MLflow server is the real one (`mlflow server`, SQLite backend) on a free loopback
port, started here and stopped by its PID; the run reaches it over HTTP and the test
reads it back through MLflow's client. The event files are read back with
TensorBoard's own reader. Both must hold exactly the rounds of the run's metrics.json.
(Resuming into the same tracked runs is tested on both sinks in `tests/unit/test_tracking.py`,
down to the ServerApp's wiring from checkpoint to sinks.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient
from tensorboard.backend.event_processing import event_accumulator

from fedapp.tracking import round_scalars
from sim.superlink import LocalSuperLink, venv_executable
from tests.helpers import free_port, run_app

SERVER_START_SECONDS = 120
TRACKED = {"model": "2nn", "tracking": "tensorboard,mlflow", "tracking_experiment": "e2e"}


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` on loopback with a SQLite backend; its URI. Stopped by PID at the end."""
    folder = tmp_path_factory.mktemp("mlflow-server")
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
    uri = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(server, uri, folder / "server.log")
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _wait_until_healthy(server: subprocess.Popen[bytes], uri: str, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        assert server.poll() is None, f"mlflow server exited: {log.read_text()[-2000:]}"
        try:
            if httpx.get(f"{uri}/health", timeout=1.0).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"mlflow server did not answer within {SERVER_START_SECONDS}s: {log.read_text()[-2000:]}")


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


def test_a_run_logs_every_round_to_both_sinks_as_metrics_json_has_them(
    superlink: LocalSuperLink, mlflow_server: str, tmp_path: Path
) -> None:
    outcome = run_app(
        superlink, tmp_path, nodes=2, num_server_rounds=2, run_name="tracked", tracking_uri=mlflow_server, **TRACKED
    )
    assert outcome.succeeded, outcome.status
    metrics = outcome.metrics()
    identity = metrics["run"]["tracking"]
    assert identity["tensorboard"] == {"logdir": str(outcome.folder)}
    assert identity["mlflow"]["tracking_uri"] == mlflow_server
    run_id = identity["mlflow"]["run_id"]
    client = MlflowClient(mlflow_server)
    run = client.get_run(run_id)
    assert (run.info.run_name, run.info.status) == ("tracked", "FINISHED")
    assert client.get_experiment(run.info.experiment_id).name == "e2e"
    assert run.data.params == {key: str(value) for key, value in metrics["run"]["config"].items()}
    expected = _expected(metrics["rounds"])
    assert [step for step, _ in expected["central_accuracy"]] == [0, 1, 2]
    assert {"federated_accuracy", "train_loss", "bytes_up", "nodes_failed", "learning_rate", "seconds"} <= set(expected)
    assert _mlflow(client, run_id, set(expected)) == expected
    assert sorted(a.path for a in client.list_artifacts(run_id)) == ["accuracy.png", "final_model.pt", "metrics.json"]
    _assert_same(_tensorboard(outcome.folder), expected)
