"""The centralized baseline end to end: a real 2-process DistributedDataParallel run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fedapp.config import ConfigError
from fedapp.models import build_model
from sim.centralized import CentralizedRequest, train_centralized
from tests.helpers import APP_DIR


def test_ddp_with_two_ranks_trains_and_writes_a_run_folder(tmp_path: Path) -> None:
    extra = {"model": "2nn", "output-dir": str(tmp_path), "run-name": "central"}
    request = CentralizedRequest.build(APP_DIR, [], nodes=2, world_size=2, epochs=1, extra=extra)
    folder = train_centralized(request)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["run"]["centralized"] == {"world_size": 2, "nodes": 2, "epochs": 1}
    rounds = metrics["rounds"]
    assert [r["round"] for r in rounds] == [0, 1]
    assert rounds[1]["central_accuracy"] > rounds[0]["central_accuracy"] + 0.5
    assert rounds[1]["bytes_up"] == rounds[1]["bytes_down"] == 0
    initial = build_model("2nn", (1, 28, 28), 10, seed=0)
    trained = torch.load(folder / "final_model.pt")
    assert set(trained) == set(initial.state_dict())
    assert (folder / "accuracy.png").stat().st_size > 10_000
    with pytest.raises(ConfigError, match="already holds files"):
        train_centralized(request)
