"""The centralized baseline: the pooled data, the ranks' shards, and a real 2-process DDP run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fedapp.config import ConfigError
from fedapp.data import DataSpec, LabelledSplit, load_node_data
from fedapp.models import build_model
from sim.centralized import CentralizedRequest, pooled_training_data, rank_shard, train_centralized
from tests.conftest import APP_DIR


def test_pool_is_exactly_the_nodes_training_splits() -> None:
    request = CentralizedRequest.build(APP_DIR, [], nodes=4, world_size=2, extra={"model": "2nn"})
    spec = DataSpec.from_config(request.config)
    pool = pooled_training_data(spec, 4)
    nodes = [load_node_data(spec, i, 4) for i in range(4)]
    assert len(pool) == sum(len(n.train) for n in nodes)
    assert torch.equal(pool.labels, torch.cat([n.train.labels for n in nodes]))


def test_rank_shards_are_equal_disjoint_and_reshuffled_each_epoch() -> None:
    data = LabelledSplit(torch.arange(11, dtype=torch.float32).unsqueeze(1), torch.arange(11))
    shards = [rank_shard(data, seed=0, epoch=1, rank=r, world_size=2).labels for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 5
    assert not set(shards[0].tolist()) & set(shards[1].tolist())
    assert not torch.equal(rank_shard(data, seed=0, epoch=2, rank=0, world_size=2).labels, shards[0])


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


def test_bad_world_size_or_epochs_are_refused_before_any_work() -> None:
    with pytest.raises(ConfigError, match="--world-size = 0"):
        CentralizedRequest.build(APP_DIR, [], nodes=2, world_size=0)
    with pytest.raises(ConfigError, match="--epochs = 0"):
        CentralizedRequest.build(APP_DIR, [], nodes=2, world_size=2, epochs=0)
