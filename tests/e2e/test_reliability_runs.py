"""Reliability end to end: same-seed runs, a SIGKILLed ServerApp resumed, and faulty clients never aggregated."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import torch

from fedapp.checkpoint import CHECKPOINT_FILE, Checkpoint, read_checkpoint, write_checkpoint
from fedapp.config import RunConfig
from fedapp.evaluation import initial_arrays
from fedapp.outputs import METRICS_FILE, MODEL_FILE, resolve_run_folder
from sim import flwr_cli
from sim.overrides import app_defaults, to_flwr_arguments
from sim.run import RunRequest
from sim.superlink import LocalSuperLink
from strategies.fedavg import FedAvg
from strategies.round_screening import CLAIM, NORM_OUTLIER
from strategies.validation import (
    NON_FINITE,
)
from strategies.validation import (
    SHAPE as SHAPE_REASON,
)
from tests.helpers import APP_DIR, TWO_NN_BYTES, assert_weights_travel, run_app

LEAN = {"model": "2nn", "num_server_rounds": 4, "fraction_evaluate": 0.0, "seed": 3}
NODES = 4


def config(**changes: Any) -> RunConfig:
    return RunConfig.from_mapping(
        {**app_defaults(APP_DIR), "model": "2nn", **{k.replace("_", "-"): v for k, v in changes.items()}}
    )


# --- update screening ------------------------------------------------------------


# --- fault injection ---------------------------------------------------------------


# --- checkpoints -----------------------------------------------------------------


def _fingerprint(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


# --- real runs ---------------------------------------------------------------------


def _final_model(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / MODEL_FILE, weights_only=True)


def _run_killed_in_round_3(superlink: LocalSuperLink, tmp_path: Path, **overrides: Any) -> Path:
    """Start a run, SIGKILL its ServerApp process once round 2 is recorded, and tell the SuperLink."""
    extra = {"output-dir": str(tmp_path), **{key.replace("_", "-"): value for key, value in overrides.items()}}
    request = RunRequest.build(APP_DIR, [], nodes=NODES, extra=extra)
    run_id = flwr_cli.submit(APP_DIR, to_flwr_arguments(request.overrides), request.federation)
    folder = resolve_run_folder(request.config, run_id)
    deadline = time.monotonic() + 300
    while _last_round(folder) < 2:
        assert time.monotonic() < deadline, "round 2 never completed"
        time.sleep(0.05)
    server_apps = [
        p
        for p in psutil.Process(superlink.process().pid).children(recursive=True)
        if "flwr-simulation" in " ".join(p.cmdline()[:2])
    ]  # type: ignore[union-attr]
    assert len(server_apps) == 1
    server_apps[0].kill()
    flwr_cli.stop_run(run_id)
    assert flwr_cli.wait_finished(run_id) == "finished:stopped"
    return folder


def _last_round(folder: Path) -> int:
    try:
        return json.loads((folder / METRICS_FILE).read_text())["rounds"][-1]["round"]
    except (FileNotFoundError, json.JSONDecodeError, IndexError):
        return -1


def _central_accuracies(metrics: dict[str, Any]) -> list[float]:
    return [record["central_accuracy"] for record in metrics["rounds"]]


@pytest.mark.slow
def test_same_seed_runs_agree_and_a_killed_scaffold_run_resumes_to_the_uninterrupted_model(
    superlink: LocalSuperLink, tmp_path: Path
) -> None:
    """SCAFFOLD with server momentum > 0: the resumed run needs the optimizer state and c from the checkpoint,
    and every node its c_i of the last aggregated round, kept on its disk (Flower's Context.state is per run).

    The uninterrupted run is also SCAFFOLD's end-to-end check: twice FedAvg's traffic both ways.
    """
    settings = {**LEAN, "strategy": "scaffold", "server_momentum": 0.9}
    reference = run_app(superlink, tmp_path, nodes=NODES, run_name="uninterrupted", **settings)
    assert reference.succeeded
    for record in reference.metrics()["rounds"][1:]:
        assert_weights_travel(record, 2 * TWO_NN_BYTES, nodes=NODES)
        assert record["control_variate_norm"] > 0 and record["updates_aggregated"] == NODES
    killed = _run_killed_in_round_3(superlink, tmp_path, run_name="killed", **settings)
    completed = read_checkpoint(killed / CHECKPOINT_FILE).server_round
    assert 2 <= completed < 4
    assert not (killed / MODEL_FILE).exists()
    expected_accuracies = _central_accuracies(reference.metrics())
    killed_accuracies = _central_accuracies(json.loads((killed / METRICS_FILE).read_text()))
    assert killed_accuracies == expected_accuracies[: len(killed_accuracies)]
    before = _fingerprint(killed)
    resumed = run_app(superlink, tmp_path, nodes=NODES, run_name="resumed", resume_from=str(killed), **settings)
    assert resumed.succeeded
    assert _fingerprint(killed) == before
    metrics = resumed.metrics()
    assert metrics["run"]["resumed_from"] == {"folder": str(killed), "round": completed}
    assert [r["round"] for r in metrics["rounds"]] == [0, 1, 2, 3, 4]
    assert metrics["rounds"][: completed + 1] == read_checkpoint(killed / CHECKPOINT_FILE).rounds
    assert _central_accuracies(metrics) == expected_accuracies
    assert expected_accuracies[-1] > expected_accuracies[0]
    expected = _final_model(reference.folder)
    for key, value in _final_model(resumed.folder).items():
        torch.testing.assert_close(value, expected[key], atol=1e-6, rtol=0)


def test_a_run_resumed_from_its_round_0_checkpoint_records_round_0_once(
    superlink: LocalSuperLink, tmp_path: Path
) -> None:
    """A run killed during round 1 leaves the checkpoint written after round 0 (the initial model)."""
    killed = tmp_path / "killed-in-round-1"
    killed.mkdir()
    round_0 = {"round": 0, "central_accuracy": 0.1, "central_loss": 2.3, "seconds": 0.5}
    initial = Checkpoint(
        0, config(**LEAN).to_mapping(), initial_arrays(config(**LEAN)), FedAvg().state_dict(), [round_0], [NODES]
    )
    write_checkpoint(killed / CHECKPOINT_FILE, initial)
    resumed = run_app(
        superlink,
        tmp_path,
        nodes=NODES,
        run_name="resumed",
        resume_from=str(killed),
        **{**LEAN, "num_server_rounds": 2},
    )
    assert resumed.succeeded
    rounds = resumed.metrics()["rounds"]
    assert [record["round"] for record in rounds] == [0, 1, 2]
    assert rounds[0] == round_0


def test_nan_wrong_shape_raising_lying_and_huge_clients_are_rejected_or_failed_never_aggregated(
    superlink: LocalSuperLink, tmp_path: Path
) -> None:
    """One node of each fault and one scaling its update by 1e6; the run completes on the two honest nodes'."""
    faults = ",".join(
        f"partition-0000{i}:{fault}" for i, fault in enumerate(("nan", "shape", "raise", "claim"), start=1)
    )
    outcome = run_app(
        superlink,
        tmp_path,
        nodes=7,
        run_name="faults",
        fault_injection=faults,
        attack="scale",
        attack_scale=1e6,
        attackers="partition-00005",
        min_train_nodes=1,
        **{**LEAN, "num_server_rounds": 2},
    )
    assert outcome.succeeded
    assert outcome.metrics()["run"]["attack"]["attackers"] == ["partition-00005"]
    rounds = outcome.metrics()["rounds"]
    for record in rounds[1:]:
        assert record["nodes_failed"] == 1 and record["failed_nodes"] == ["partition-00003"]
        assert record["updates_rejected"] == 4
        assert {(r["node"], r["reason"]) for r in record["rejected_updates"]} == {
            ("partition-00001", NON_FINITE),
            ("partition-00002", SHAPE_REASON),
            ("partition-00004", CLAIM),
            ("partition-00005", NORM_OUTLIER),
        }
        assert record["updates_aggregated"] == 2 and record["kept_previous_model"] is False
    assert rounds[2]["central_accuracy"] > rounds[0]["central_accuracy"]
    assert all(torch.isfinite(value).all() for value in _final_model(outcome.folder).values())
