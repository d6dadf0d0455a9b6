"""`python -m sim compare` before any run: its plan, labels, shared settings, and refusals of bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fedapp.config import ConfigError
from sim.compare import build_request, parse_contenders, plan
from tests.helpers import APP_DIR

STRATEGIES = "fedavg,small-lr=fedavg"


def _sim(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sim", *arguments],
        cwd=APP_DIR,
        capture_output=True,
        text=True,
        env=os.environ,
        check=False,
    )


def test_compare_refuses_an_out_folder_that_holds_results(tmp_path: Path) -> None:
    (tmp_path / "summary.csv").write_text("earlier results")
    result = _sim("compare", "--strategies", "fedavg", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "already holds files" in result.stderr
    assert (tmp_path / "summary.csv").read_text() == "earlier results"


def test_compare_rejects_bad_input_before_starting_anything(tmp_path: Path) -> None:
    result = _sim("compare", "--strategies", "fedavg,nope", "--out", str(tmp_path / "x"))
    assert result.returncode == 2 and "unknown strategy 'nope'" in result.stderr
    assert not (tmp_path / "x").exists()


def _request(tmp_path: Path, **changes: object):  # noqa: ANN202
    options = {
        "strategies": STRATEGIES, "preset": None, "settings": [], "override_texts": [], "rounds": 2, "nodes": 4,
        "seeds": "0,1", "target": None, "centralized_epochs": None, "world_size": 2, "resources": "cpu",
        "out": tmp_path, "command": "test",
    }  # fmt: skip
    return build_request(**{**options, **changes})


def test_plan_gives_every_strategy_and_seed_its_own_run_with_shared_settings(tmp_path: Path) -> None:
    comparison = plan(
        _request(tmp_path, settings=[("small-lr", "learning-rate=0.01")], override_texts=["model=2nn"]), APP_DIR
    )
    assert [(r.label, r.seed) for r in comparison.runs] == [
        ("fedavg", 0),
        ("small-lr", 0),
        ("fedavg", 1),
        ("small-lr", 1),
    ]
    for run in comparison.runs:
        assert run.request.config.run_name == f"{run.label}-{run.seed}"
        assert run.request.config.output_dir == str(tmp_path / "runs")
        assert (run.request.config.model, run.request.config.num_server_rounds, run.request.num_nodes) == ("2nn", 2, 4)
    assert [r.request.config.learning_rate for r in comparison.runs[:2]] == [0.05, 0.01]
    assert sorted(comparison.baselines) == [0, 1] and comparison.baselines[1].config.run_name == "centralized-1"
    assert comparison.baselines[0].epochs == 2


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"settings": [("small-lr", "partitioner=dirichlet")]}, "would train on different data"),
        ({"override_texts": ["seed=3"]}, "'seed' is set by compare"),
        ({"seeds": "0,0"}, "--seeds = '0,0'"),
        ({"target": 1.5}, "--target = 1.5"),
        ({"settings": [("other", "learning-rate=0.1")]}, "--set 'other': no such strategy label"),
        ({"preset": "fedavg-vs-fedsgd"}, "--strategies and --preset are exclusive"),
    ],
)
def test_comparisons_that_would_not_be_fair_or_well_formed_are_refused(
    tmp_path: Path, changes: dict, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        plan(_request(tmp_path, **changes), APP_DIR)


def test_contender_labels_name_a_strategy_and_must_be_distinct() -> None:
    contenders = parse_contenders("fedavg, fast=fedavg", [("fast", "learning-rate=0.1 local-epochs=2")])
    assert [(c.label, c.strategy, c.overrides) for c in contenders] == [
        ("fedavg", "fedavg", {}),
        ("fast", "fedavg", {"learning-rate": 0.1, "local-epochs": 2}),
    ]
    for bad in ("fedavg,fedavg", "centralized=fedavg", "a/b=fedavg"):
        with pytest.raises(ConfigError, match="repeated, reserved or not a folder name"):
            parse_contenders(bad, [])


def test_a_strategys_own_rounds_beat_the_shared_ones_but_not_an_explicit_rounds(tmp_path: Path) -> None:
    settings = [("small-lr", "num-server-rounds=5")]
    own = plan(_request(tmp_path, rounds=None, settings=settings, override_texts=["num-server-rounds=3"]), APP_DIR)
    assert [r.request.config.num_server_rounds for r in own.runs[:2]] == [3, 5]
    forced = plan(_request(tmp_path, rounds=2, settings=settings), APP_DIR)
    assert [r.request.config.num_server_rounds for r in forced.runs[:2]] == [2, 2]


def test_when_one_strategy_distils_every_run_reserves_the_same_public_set(tmp_path: Path) -> None:
    comparison = plan(_request(tmp_path, strategies="fedavg,feddistill"), APP_DIR)
    assert {r.request.config.public_set_size for r in comparison.runs} == {500}
    assert {b.config.public_set_size for b in comparison.baselines.values()} == {500}


def test_a_comparisons_runs_are_tracked_together_under_label_and_seed(tmp_path: Path) -> None:
    """Named `<label>-<seed>`, in one TensorBoard folder (`<out>/runs`) and one MLflow experiment (`--out`'s name)."""
    out = tmp_path / "fedavg-vs-small-lr"
    comparison = plan(_request(out, override_texts=["tracking=tensorboard,mlflow"]), APP_DIR)
    configs = [run.request.config for run in comparison.runs] + [b.config for b in comparison.baselines.values()]
    assert {(c.tracking, c.tracking_experiment, c.output_dir) for c in configs} == {
        ("tensorboard,mlflow", "fedavg-vs-small-lr", str(out / "runs"))
    }
    assert [c.run_name for c in configs] == [
        "fedavg-0", "small-lr-0", "fedavg-1", "small-lr-1", "centralized-0", "centralized-1"
    ]  # fmt: skip
    chosen = plan(_request(out, override_texts=["tracking=mlflow tracking-experiment=mine"]), APP_DIR)
    assert {run.request.config.tracking_experiment for run in chosen.runs} == {"mine"}


def test_the_dp_utility_preset_plans_private_runs_beside_a_non_private_one(tmp_path: Path) -> None:
    request = _request(tmp_path, strategies=None, preset="dp-utility", rounds=None, nodes=None, seeds=None)
    comparison = plan(request, APP_DIR)
    assert len(comparison.runs) == 6 * 3 and sorted(comparison.baselines) == [0, 1, 2]
    configs = {run.label: run.request.config for run in comparison.runs if run.seed == 0}
    assert configs["non-private"].dp == "none"
    assert [configs[f"z{z:g}"].dp_noise_multiplier for z in (0.5, 1, 2, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert configs["z1-adaptive"].dp == "server-adaptive" and configs["z1-adaptive"].dp_clipping_norm == 0.1
    assert {(c.client_sampling, c.fraction_train, c.num_server_rounds) for c in configs.values()} == {
        ("poisson", 0.1, 100)
    }
    assert comparison.runs[0].request.num_nodes == 500
