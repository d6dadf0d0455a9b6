"""Differential privacy through the real `flwr run`: secret noise, seeded noise on request, the budget stop.

Small runs (logistic regression, 2-4 nodes, one training round each): two runs with
the same seed and DP on must end with different models (the noise is secret), two
runs with `dp-noise = "seeded-insecure"` must end identical, and a budget that one
round exhausts must stop the run cleanly with its reason in metrics.json. The
refusal of seeded noise on nodes with their own data runs on the TLS cluster
(`test_deploy_cluster.py`). The math is tested in `tests/unit/test_privacy.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fedapp.outputs import MODEL_FILE, PLOT_FILE
from sim.flwr_cli import FINISHED_OK
from sim.run import RunOutcome
from sim.superlink import LocalSuperLink
from tests.helpers import run_app

SMALL_RUN = {"model": "logreg", "fraction_evaluate": 0.0, "seed": 3}


def _completed(superlink: LocalSuperLink, tmp_path: Path, name: str, nodes: int, **overrides: Any) -> RunOutcome:
    outcome = run_app(superlink, tmp_path, nodes=nodes, run_name=name, **{**SMALL_RUN, **overrides})
    assert outcome.status == FINISHED_OK
    return outcome


def _final_model(outcome: RunOutcome) -> dict[str, torch.Tensor]:
    return torch.load(outcome.folder / MODEL_FILE, weights_only=True)


def _same(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(first[key], second[key]) for key in first)


def test_two_dp_runs_with_the_same_seed_end_with_different_models(superlink: LocalSuperLink, tmp_path: Path) -> None:
    private = {"dp": "server-fixed", "client_sampling": "poisson", "fraction_train": 0.5, "num_server_rounds": 1}
    first, second = (_completed(superlink, tmp_path, name, 4, **private) for name in ("first", "second"))
    assert not _same(_final_model(first), _final_model(second)), "secret noise: same seed, different models"
    for outcome in (first, second):
        metrics = outcome.metrics()
        terms = metrics["run"]["privacy"]
        assert terms["noise"] == "secret" and terms["private"] is True
        assert terms["client_sampling"] == "poisson" and terms["neighbouring_relation"] == "add-or-remove-one"
        assert terms["sampling_randomness"] == "seeded", "simulated nodes: sampling follows the seed"
        record = metrics["rounds"][1]
        assert record["dp_expected_clients"] == 2.0 and record["epsilon"] > 0
    assert first.metrics()["rounds"][1]["clients"] == second.metrics()["rounds"][1]["clients"], "same sample"


def test_seeded_noise_repeats_a_run_and_the_budget_stops_it(superlink: LocalSuperLink, tmp_path: Path) -> None:
    """Adaptive clipping, z = 2 over 2 of 2 nodes (replace-one): round 1 costs 4.73, round 2 would reach 7.08 > 6."""
    seeded = {
        "dp": "server-adaptive",
        "dp_noise": "seeded-insecure",
        "dp_noise_multiplier": 2.0,
        "dp_count_noise_stddev": 2.0,
        "dp_max_epsilon": 6.0,
        "num_server_rounds": 3,
    }
    first, second = (_completed(superlink, tmp_path, name, 2, **seeded) for name in ("first", "second"))
    assert _same(_final_model(first), _final_model(second)), "seeded noise: the same model twice"
    for outcome in (first, second):
        metrics = outcome.metrics()
        assert metrics["run"]["privacy"]["noise"] == "seeded-insecure" and metrics["run"]["privacy"]["private"] is False
        assert metrics["run"]["stopped"]["before_round"] == 2
        assert (
            "round 2 would raise epsilon from 4.7285 to 7.0774 > dp-max-epsilon 6"
            in metrics["run"]["stopped"]["reason"]
        )
        assert [record["round"] for record in metrics["rounds"]] == [0, 1]
        assert metrics["rounds"][1]["dp_clipping_norm"] == 1.0 and metrics["rounds"][1]["dp_next_clipping_norm"] != 1.0
        assert (outcome.folder / MODEL_FILE).exists() and (outcome.folder / PLOT_FILE).exists()
