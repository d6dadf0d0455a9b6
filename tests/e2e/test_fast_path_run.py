"""The simulation fast path and evaluation riding on training change no result: same weights, same figures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fedapp.outputs import MODEL_FILE
from sim.superlink import LocalSuperLink
from tests.helpers import run_app

RUN = {"model": "2nn", "num_server_rounds": 2, "seed": 5}


def test_fast_path_and_evaluation_on_arrival_match_the_plain_path_exactly(
    superlink: LocalSuperLink, tmp_path: Path
) -> None:
    fast = run_app(superlink, tmp_path, nodes=3, run_name="fast", **RUN)
    plain = run_app(
        superlink,
        tmp_path,
        nodes=3,
        run_name="plain",
        simulation_fast_path=False,
        federated_evaluation="separate",
        **RUN,
    )
    assert fast.succeeded and plain.succeeded
    fast_weights = torch.load(fast.folder / MODEL_FILE)
    plain_weights = torch.load(plain.folder / MODEL_FILE)
    assert list(fast_weights) == list(plain_weights)
    assert all(torch.equal(fast_weights[key], plain_weights[key]) for key in fast_weights)

    fast_rounds, plain_rounds = fast.metrics()["rounds"], plain.metrics()["rounds"]
    for key in ("central_accuracy", "central_loss", "train_loss"):
        assert [r.get(key) for r in fast_rounds] == [r.get(key) for r in plain_rounds], key
    for fast_round, plain_round in zip(fast_rounds[1:], plain_rounds[1:], strict=True):
        # the same arrays reach each client (by reference, counted in full); the flag asking to evaluate costs bytes
        assert 0 < fast_round["bytes_down"] - plain_round["bytes_down"] < 100 * 3
    # Each round's federated figures describe its own global model in both ways of evaluating:
    # riding on round r+1's training messages (and one exchange after the last round) or in an
    # exchange of their own right after round r.
    # The same nodes evaluate the same weights; only the order of the weighted sum over nodes may differ.
    for fast_round, plain_round in zip(fast_rounds[1:], plain_rounds[1:], strict=True):
        assert fast_round["federated_accuracy"] == pytest.approx(plain_round["federated_accuracy"], rel=1e-12)
        assert fast_round["federated_loss"] == pytest.approx(plain_round["federated_loss"], rel=1e-12)
        assert fast_round["evaluation_nodes"] == plain_round["evaluation_nodes"] == 3
    assert fast_rounds[0]["evaluation_nodes"] == 3 and "federated_accuracy" not in plain_rounds[0]
    assert fast_rounds[1]["evaluation_bytes"] < plain_rounds[1]["evaluation_bytes"]  # no model sent to evaluate
