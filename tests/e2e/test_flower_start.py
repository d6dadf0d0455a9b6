"""Every strategy of ours runs in a plain Flower ServerApp, under Flower's own `Strategy.start`.

The app under test is this project with one change in its pyproject.toml: the
ServerApp component is `fedapp.flower_server_app:app` (no fedapp federation loop),
the ClientApp is ours. Each strategy runs 2 rounds on 4 simulated nodes through the
real `flwr run`, and must end with a model that beats the initial one centrally.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from fedapp.flower_server_app import RESULT_FILE
from fedapp.outputs import MODEL_FILE
from sim.superlink import LocalSuperLink
from tests.helpers import APP_DIR, run_app

OUR_STRATEGIES = ("fedavg", "fedsgd", "fedprox", "feddf", "feddistill")
SETTINGS = {
    "fedsgd": {"learning_rate": 0.5},
    "feddf": {"distill_steps": 50},
    "feddistill": {"client_model": "2nn,logreg", "distill_steps": 50},
}


@pytest.fixture(scope="module")
def plain_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This app with Flower's plain `Strategy.start` ServerApp in place of fedapp's."""
    folder = tmp_path_factory.mktemp("plain-flower-app")
    for package in ("fedapp", "strategies", "usermodels"):
        shutil.copytree(APP_DIR / package, folder / package, ignore=shutil.ignore_patterns("__pycache__"))
    pyproject = (APP_DIR / "pyproject.toml").read_text()
    ours = 'serverapp = "fedapp.server_app:app"'
    assert ours in pyproject
    (folder / "pyproject.toml").write_text(pyproject.replace(ours, 'serverapp = "fedapp.flower_server_app:app"'))
    return folder


@pytest.mark.parametrize("strategy", OUR_STRATEGIES)
def test_our_strategy_runs_under_flowers_own_start(
    superlink: LocalSuperLink, plain_app: Path, tmp_path: Path, strategy: str
) -> None:
    settings = SETTINGS.get(strategy, {})
    outcome = run_app(
        superlink, tmp_path, app_dir=plain_app, model="2nn", num_server_rounds=2, strategy=strategy, **settings
    )
    assert outcome.succeeded, outcome.status
    history = json.loads((outcome.folder / RESULT_FILE).read_text())
    central = history["evaluate_metrics_serverapp"]
    assert sorted(central) == ["0", "1", "2"]
    assert central["2"]["central_accuracy"] > central["0"]["central_accuracy"] + 0.2
    assert sorted(history["train_metrics_clientapp"]) == ["1", "2"]
    assert sorted(history["evaluate_metrics_clientapp"]) == ["1", "2"]
    final = torch.load(outcome.folder / MODEL_FILE, weights_only=True)
    assert final and all(torch.isfinite(tensor).all() for tensor in final.values())
