"""The real app through the real `flwr run` on a real local SuperLink (Flower's simulation engine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from fedapp.models import build_model
from sim.flwr_cli import FINISHED_OK
from sim.superlink import LocalSuperLink
from tests.helpers import APP_DIR, run_app

CNN_BYTES = 1_663_370 * 4
ROUND_KEYS = {
    "round",
    "central_accuracy",
    "central_loss",
    "train_loss",
    "federated_accuracy",
    "federated_loss",
    "nodes_sampled",
    "nodes_replied",
    "nodes_failed",
    "updates_rejected",
    "bytes_down",
    "bytes_up",
    "learning_rate",
    "seconds",
}


def test_fedavg_trains_mnist_and_writes_its_outputs(superlink: LocalSuperLink, tmp_path: Path) -> None:
    outcome = run_app(superlink, tmp_path, nodes=4, num_server_rounds=2, run_name="fedavg-e2e")
    assert outcome.status == FINISHED_OK
    assert outcome.folder == tmp_path / "fedavg-e2e"
    metrics = outcome.metrics()
    rounds = metrics["rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    for record in rounds[1:]:
        assert set(record) >= ROUND_KEYS
        assert record["nodes_sampled"] == record["nodes_replied"] == 4 and record["nodes_failed"] == 0
        assert CNN_BYTES * 4 <= record["bytes_down"] < CNN_BYTES * 4 * 1.01
        assert CNN_BYTES * 4 <= record["bytes_up"] < CNN_BYTES * 4 * 1.01
    assert rounds[2]["central_accuracy"] > rounds[0]["central_accuracy"] + 0.5
    assert metrics["run"]["config"]["strategy"] == "fedavg"
    model = build_model("cnn", (1, 28, 28), 10, seed=0)
    model.load_state_dict(torch.load(outcome.folder / "final_model.pt"))
    assert (outcome.folder / "accuracy.png").stat().st_size > 10_000


def _sim(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sim", *arguments],
        cwd=APP_DIR,
        capture_output=True,
        text=True,
        env=os.environ,
        check=False,
    )


def test_cli_runs_and_reports_output_folder_and_accuracy(superlink: LocalSuperLink, tmp_path: Path) -> None:
    result = _sim("run", "--nodes", "3", "-c", f"num-server-rounds=1 model=2nn output-dir={tmp_path} run-name=cli")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"[sim] outputs: {tmp_path / 'cli'}" in result.stdout
    assert "[sim] final central accuracy:" in result.stdout
    assert "round 1/1 | central accuracy" in result.stdout
    assert json.loads((tmp_path / "cli" / "metrics.json").read_text())["rounds"][1]["nodes_sampled"] == 3


def test_a_failed_run_exits_non_zero_and_loses_nothing(superlink: LocalSuperLink, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "metrics.json").write_text("earlier results")
    result = _sim("run", "--nodes", "2", "-c", f"num-server-rounds=1 output-dir={tmp_path} run-name=taken")
    assert result.returncode == 1
    assert "ended with status finished:failed" in result.stdout
    assert "already holds files" in result.stdout
    assert (taken / "metrics.json").read_text() == "earlier results"
