"""One 2NN run, two twins: the bench's plain loop and the simulation's plain path give its results.

The run uses the defaults (the simulation fast path on, federated evaluation riding on
the training message). The bench's compute floor must do the same work (same partitions,
steps, averaging, evaluation), and turning the fast path off with separate evaluation
rounds must give the same weights bit for bit and the same figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fedapp.config import RunConfig
from fedapp.outputs import MODEL_FILE
from sim.plain_loop import plain_loop
from sim.run import RunOutcome
from sim.superlink import LocalSuperLink
from tests.helpers import run_app

RUN = {"model": "2nn", "num_server_rounds": 2}


def test_the_plain_loop_and_the_plain_path_reproduce_a_fast_path_run(superlink: LocalSuperLink, tmp_path: Path) -> None:
    fast = run_app(superlink, tmp_path, nodes=2, run_name="fast", **RUN)
    assert fast.succeeded
    metrics = fast.metrics()
    loop = plain_loop(RunConfig.from_mapping(metrics["run"]["config"]), num_nodes=2)
    simulated = [record["central_accuracy"] for record in metrics["rounds"]]
    assert simulated[2] > simulated[0] + 0.3
    assert loop.central_accuracy == pytest.approx(simulated, abs=2e-3)  # float sums differ in the last bits only
    assert len(loop.round_seconds) == 3 and loop.peak_rss_bytes > 0

    plain = run_app(
        superlink,
        tmp_path,
        nodes=2,
        run_name="plain",
        simulation_fast_path=False,
        federated_evaluation="separate",
        **RUN,
    )
    assert plain.succeeded
    _assert_same_results(fast, plain)


def _assert_same_results(fast: RunOutcome, plain: RunOutcome) -> None:
    """Same final weights tensor for tensor, same central figures, each round's federated figures about its model."""
    fast_weights = torch.load(fast.folder / MODEL_FILE)
    plain_weights = torch.load(plain.folder / MODEL_FILE)
    assert list(fast_weights) == list(plain_weights)
    assert all(torch.equal(fast_weights[key], plain_weights[key]) for key in fast_weights)

    fast_rounds, plain_rounds = fast.metrics()["rounds"], plain.metrics()["rounds"]
    for key in ("central_accuracy", "central_loss", "train_loss"):
        assert [r.get(key) for r in fast_rounds] == [r.get(key) for r in plain_rounds], key
    for fast_round, plain_round in zip(fast_rounds[1:], plain_rounds[1:], strict=True):
        # the same arrays reach each client (by reference, counted in full); the flag asking to evaluate costs bytes
        assert 0 < fast_round["bytes_down"] - plain_round["bytes_down"] < 100 * 2
        # Round r's federated figures describe round r's model either way: riding on round r+1's
        # training messages (one exchange after the last round) or in an exchange of their own.
        # The same nodes evaluate the same weights; only the order of the weighted sum may differ.
        assert fast_round["federated_accuracy"] == pytest.approx(plain_round["federated_accuracy"], rel=1e-12)
        assert fast_round["federated_loss"] == pytest.approx(plain_round["federated_loss"], rel=1e-12)
        assert fast_round["evaluation_nodes"] == plain_round["evaluation_nodes"] == 2
    assert fast_rounds[0]["evaluation_nodes"] == 2 and "federated_accuracy" not in plain_rounds[0]
    assert fast_rounds[1]["evaluation_bytes"] < plain_rounds[1]["evaluation_bytes"]  # no model sent to evaluate
