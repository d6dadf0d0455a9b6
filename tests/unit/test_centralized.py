"""The centralized baseline's data: the pooled training splits and the ranks' shards."""

from __future__ import annotations

import pytest
import torch

from fedapp.config import ConfigError
from fedapp.data import DataSpec, LabelledSplit, load_node_data
from sim.centralized import CentralizedRequest, pooled_training_data, rank_shard
from tests.helpers import APP_DIR


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


def test_bad_world_size_or_epochs_are_refused_before_any_work() -> None:
    with pytest.raises(ConfigError, match="--world-size = 0"):
        CentralizedRequest.build(APP_DIR, [], nodes=2, world_size=0)
    with pytest.raises(ConfigError, match="--epochs = 0"):
        CentralizedRequest.build(APP_DIR, [], nodes=2, world_size=2, epochs=0)
