"""A round's replies screened against each other by the federation: bad claims, norm outliers, capped weights.

Real ClientApp replies (2NN, 5 nodes) are tampered with as a broken or hostile node
would: the round must go on, with each bad reply rejected or capped and named.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.app import ConfigRecord, Message

from fedapp.config import RunConfig
from fedapp.federation import Exchange, Federation
from fedapp.nodes import NodeDirectory
from fedapp.outputs import RunOutputs
from fedapp.strategy_factory import build_strategy
from strategies.aggregation import difference, global_norm
from strategies.arrays import reply_arrays, to_numpy, to_record
from strategies.protocol import LEARNING_RATE, LOCAL_EPOCHS, METRICS, NUM_EXAMPLES, SERVER_ROUND
from strategies.round_screening import CLAIM, NORM_OUTLIER
from tests.helpers import FakeGrid, answer, initial, run_config

NODES = 5
pytestmark = pytest.mark.usefixtures("message_identity")


def _round(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **changes: Any) -> tuple[Federation, list, list]:
    """A federation over 5 fake nodes, the messages of round 1 and the real ClientApp's replies to them."""
    raw = run_config(local_epochs=1, fraction_evaluate=0.0, **changes)
    config = RunConfig.from_mapping(raw)
    grid = FakeGrid(list(range(1, NODES + 1)))
    federation = Federation(
        grid, NodeDirectory(grid, 1.0), build_strategy(config), config, None, RunOutputs(tmp_path, {})
    )
    train_config = ConfigRecord({SERVER_ROUND: 1, LEARNING_RATE: config.learning_rate, LOCAL_EPOCHS: 1})
    sent = list(federation.strategy.configure_train(1, initial(), train_config, grid))
    return federation, sent, answer(sent, raw, monkeypatch, NODES)


def _screen(federation: Federation, sent: list[Message], replies: list[Message]) -> tuple[list, list, list]:
    exchange = Exchange(sent, list(zip(sent, replies, strict=True)), [], 0, 0)
    return federation._screen(exchange)


def _scaled(reply: Message, sent: Message, factor: float) -> None:
    start = to_numpy(sent.content["arrays"])
    trained = reply_arrays(reply.content)
    reply.content["arrays"] = to_record(
        {k: (start[k] + factor * (v - start[k])).astype(v.dtype) for k, v in trained.items()}
    )


def test_bad_claims_and_a_huge_update_are_rejected_and_a_huge_claim_is_capped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    federation, sent, replies = _round(monkeypatch, tmp_path)
    honest = [int(r.content[METRICS][NUM_EXAMPLES]) for r in replies]
    replies[0].content[METRICS][NUM_EXAMPLES] = -1e9
    _scaled(replies[1], sent[1], 1e6)
    replies[2].content[METRICS][NUM_EXAMPLES] = 10**9
    valid, rejected, capped = _screen(federation, sent, replies)
    assert valid == replies[2:]
    assert [r["reason"] for r in rejected] == [CLAIM, NORM_OUTLIER]
    assert "-1e+09" in rejected[0]["detail"] and "median norm" in rejected[1]["detail"]
    median = float(np.median([10**9, honest[3], honest[4]]))  # the claims of the replies that passed
    assert capped == [{"node": "unknown node", "claimed": 1e9, "counted": 10 * median}]
    assert replies[2].content[METRICS][NUM_EXAMPLES] == int(10 * median), "the capped claim is what strategies read"
    new_arrays, _ = federation.strategy.aggregate_train(1, valid)
    moved = global_norm(difference(to_numpy(new_arrays), to_numpy(initial())))
    assert math.isfinite(moved) and moved < 10, "the round's model stays near the honest updates"


def test_honest_replies_pass_and_the_screens_can_be_turned_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    federation, sent, replies = _round(monkeypatch, tmp_path)
    valid, rejected, capped = _screen(federation, sent, replies)
    assert len(valid) == NODES and rejected == [] and capped == []

    federation, sent, replies = _round(monkeypatch, tmp_path, outlier_norm_ratio=0.0, max_claim_ratio=0.0)
    _scaled(replies[2], sent[2], 1e6)
    replies[3].content[METRICS][NUM_EXAMPLES] = 10**9
    valid, rejected, capped = _screen(federation, sent, replies)
    assert len(valid) == NODES and rejected == [] and capped == []


def test_under_dp_only_the_claim_itself_is_checked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    federation, sent, replies = _round(monkeypatch, tmp_path, dp="server-fixed", dp_noise="seeded-insecure")
    replies[0].content[METRICS][NUM_EXAMPLES] = -1
    _scaled(replies[2], sent[2], 1e6)
    valid, rejected, capped = _screen(federation, sent, replies)
    assert [r["reason"] for r in rejected] == [CLAIM]
    assert len(valid) == NODES - 1 and capped == []
