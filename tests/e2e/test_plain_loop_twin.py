"""The bench's compute floor does the simulation's work: same partitions, steps, averaging, evaluation."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedapp.config import RunConfig
from sim.plain_loop import plain_loop
from sim.superlink import LocalSuperLink
from tests.helpers import run_app


def test_the_plain_loop_reaches_the_simulations_accuracy_round_by_round(
    superlink: LocalSuperLink, tmp_path: Path
) -> None:
    outcome = run_app(superlink, tmp_path, nodes=2, num_server_rounds=2, model="2nn", run_name="loop-twin")
    assert outcome.succeeded
    metrics = outcome.metrics()
    loop = plain_loop(RunConfig.from_mapping(metrics["run"]["config"]), num_nodes=2)
    simulated = [record["central_accuracy"] for record in metrics["rounds"]]
    assert simulated[2] > simulated[0] + 0.3
    assert loop.central_accuracy == pytest.approx(simulated, abs=2e-3)  # float sums differ in the last bits only
    assert len(loop.round_seconds) == 3 and loop.peak_rss_bytes > 0
