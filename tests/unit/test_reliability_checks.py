"""Reliability without a run: update screening, fault plans, checkpoints and the refusals of bad resumes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from flwr.app import Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAdam

from fedapp.checkpoint import CHECKPOINT_FILE, Checkpoint, read_checkpoint, resume_point, write_checkpoint
from fedapp.config import ConfigError, RunConfig
from fedapp.evaluation import initial_arrays
from fedapp.faults import ENABLE_VARIABLE, NAN, SHAPE, corrupt, parse_fault_plan
from fedapp.federation import measured_replies
from fedapp.outputs import METRICS_FILE
from sim.overrides import app_defaults
from sim.run import RunRequest
from strategies.accounting import RoundEvent
from strategies.builtin import hooks_for
from strategies.dp import DifferentialPrivacy, PrivacySettings
from strategies.fedavg import FedAvg
from strategies.sampling import FIXED, ClientSampler, seeded_sampling
from strategies.validation import (
    DTYPE,
    MISSING,
    NON_FINITE,
    NORM,
    UNEXPECTED,
    structure_problem,
    weights_problem,
)
from strategies.validation import (
    SHAPE as SHAPE_REASON,
)
from tests.helpers import APP_DIR


def config(**changes: Any) -> RunConfig:
    return RunConfig.from_mapping(
        {**app_defaults(APP_DIR), "model": "2nn", **{k.replace("_", "-"): v for k, v in changes.items()}}
    )


# --- update screening ------------------------------------------------------------

REFERENCE = {"w": np.zeros((2, 3), dtype=np.float32), "b": np.zeros(3, dtype=np.float32)}


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ({"w": REFERENCE["w"]}, MISSING),
        ({**REFERENCE, "extra": REFERENCE["b"]}, UNEXPECTED),
        ({**REFERENCE, "w": np.zeros((3, 3), dtype=np.float32)}, SHAPE_REASON),
        ({**REFERENCE, "b": np.zeros(3, dtype=np.float64)}, DTYPE),
        ({**REFERENCE, "b": np.array([0, np.nan, 0], dtype=np.float32)}, NON_FINITE),
        ({**REFERENCE, "b": np.array([0, np.inf, 0], dtype=np.float32)}, NON_FINITE),
    ],
)
def test_structure_problems_are_named_by_reason(reply: dict[str, np.ndarray], reason: str) -> None:
    problem = structure_problem(reply, REFERENCE)
    assert problem is not None and problem.kind == reason


def test_update_norm_is_checked_against_the_sent_weights_only_when_bounded() -> None:
    sent = {"w": np.ones((2, 2), dtype=np.float32)}
    moved = {"w": sent["w"] + np.float32(1.0)}  # update norm 2
    assert weights_problem(sent, sent, 1.0) is None
    assert weights_problem(moved, sent, 0.0) is None
    assert weights_problem(moved, sent, 2.5) is None
    rejection = weights_problem(moved, sent, 1.5)
    assert rejection is not None and rejection.kind == NORM and "update norm 2 exceeds" in rejection.detail
    assert weights_problem({"w": np.full((2, 2), np.nan, dtype=np.float32)}, sent, 1.5).kind == NON_FINITE  # type: ignore[union-attr]


# --- fault injection ---------------------------------------------------------------


@pytest.mark.usefixtures("message_identity")
def test_evaluation_replies_without_examples_are_left_out_of_the_average() -> None:
    """1,000 nodes of 4 digits have no validation split: their replies must not reach Flower's weighted mean."""

    def evaluated(examples: int) -> Message:
        metrics = MetricRecord({"num-examples": examples, "eval_loss": 0.5, "eval_acc": 1.0})
        return Message(RecordDict({"metrics": metrics}), dst_node_id=1, message_type=MessageType.EVALUATE)

    empty, measured = evaluated(0), evaluated(3)
    assert measured_replies([empty, measured, empty]) == [measured]
    assert measured_replies([empty, empty]) == []


def test_fault_plan_syntax_and_corruptions() -> None:
    assert parse_fault_plan("") == {}
    assert parse_fault_plan("partition-00001:nan, partition-00002:raise") == {
        "partition-00001": "nan",
        "partition-00002": "raise",
    }
    for bad in ("partition-00001", "partition-00001:boom", ":nan", "a:nan,a:shape"):
        with pytest.raises(ValueError, match="bad fault-injection entry"):
            parse_fault_plan(bad)
    corrupted = corrupt(REFERENCE, NAN)
    assert structure_problem(corrupted, REFERENCE).kind == NON_FINITE  # type: ignore[union-attr]
    assert structure_problem(corrupt(REFERENCE, SHAPE), REFERENCE).kind == SHAPE_REASON  # type: ignore[union-attr]
    assert np.all(REFERENCE["w"] == 0)


def test_fault_injection_needs_its_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENABLE_VARIABLE, raising=False)
    with pytest.raises(ConfigError, match=f"'fault-injection' = 'partition-00001:nan' needs {ENABLE_VARIABLE}=1"):
        config(fault_injection="partition-00001:nan")
    monkeypatch.setenv(ENABLE_VARIABLE, "1")
    assert config(fault_injection="partition-00001:nan").fault_plan == {"partition-00001": "nan"}
    with pytest.raises(ConfigError, match="'fault-injection' = 'x:melt' is not allowed"):
        config(fault_injection="x:melt")


# --- checkpoints -----------------------------------------------------------------


def _adaptive_privacy() -> DifferentialPrivacy:
    sampler = ClientSampler(FIXED, 0.5, 1, seeded_sampling(0))
    return DifferentialPrivacy(PrivacySettings("server-adaptive", 1.0, 0.5, 1e-5), sampler)


def test_strategy_state_survives_a_checkpoint(tmp_path: Path) -> None:
    privacy = _adaptive_privacy()
    strategy = FedAvg(server_momentum=0.9, privacy=privacy)
    strategy.optimizer.step({"w": np.zeros(3, dtype=np.float32)}, {"w": np.array([1, 2, 3], dtype=np.float32)})
    privacy_event = RoundEvent.fixed(2, 4, 0.5)
    privacy.ledger.record(privacy_event)
    privacy.clipping_norm = 0.7
    adam = FedAdam()
    adam.m_t, adam.v_t = {"w": np.ones(2)}, {"w": np.full(2, 0.5)}
    arrays = initial_arrays(config())
    path = tmp_path / CHECKPOINT_FILE
    state = {"fedavg": hooks_for(strategy).state_dict(), "fedadam": hooks_for(adam).state_dict()}
    write_checkpoint(
        path, Checkpoint(2, config().to_mapping(), arrays, state, [{"round": 0}, {"round": 1}, {"round": 2}], [10])
    )
    loaded = read_checkpoint(path)
    restored = FedAvg(server_momentum=0.9, privacy=_adaptive_privacy())
    hooks_for(restored).load_state_dict(loaded.strategy_state["fedavg"])
    np.testing.assert_array_equal(restored.optimizer.velocity["w"], [1, 2, 3])
    assert restored.privacy is not None and restored.privacy.ledger.counts == {privacy_event: 1}
    assert restored.privacy.clipping_norm == 0.7
    fresh_adam = FedAdam()
    hooks_for(fresh_adam).load_state_dict(loaded.strategy_state["fedadam"])
    np.testing.assert_array_equal(fresh_adam.v_t["w"], [0.5, 0.5])  # type: ignore[index]
    assert loaded.server_round == 2 and [r["round"] for r in loaded.rounds] == [0, 1, 2]
    assert loaded.partition_counts == [10]
    for key, value in arrays.to_torch_state_dict().items():
        assert torch.equal(loaded.arrays.to_torch_state_dict()[key], value)


def _checkpointed_run(folder: Path, partition_counts: list[int] | None = None, **changes: Any) -> None:
    arrays = initial_arrays(config())
    write_checkpoint(
        folder / CHECKPOINT_FILE,
        Checkpoint(2, config(**changes).to_mapping(), arrays, {}, [{"round": 0}], partition_counts),
    )


def test_resume_refuses_what_it_cannot_continue(tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    expectations = {
        "no such folder": config(resume_from=str(tmp_path / "missing")),
        "holds no checkpoint.pt": config(resume_from=str(old)),
    }
    for message, resumed in expectations.items():
        with pytest.raises(ConfigError, match=message):
            resume_point(resumed)
    _checkpointed_run(old, seed=1)
    with pytest.raises(
        ConfigError, match=r"^run-config key 'seed' = 0 differs from the checkpoint in .*; allowed: 1 \("
    ):
        resume_point(config(resume_from=str(old)))
    with pytest.raises(ConfigError, match="'num-server-rounds' = 2 leaves nothing to resume; allowed: > 2"):
        resume_point(config(resume_from=str(old), seed=1, num_server_rounds=2))
    assert resume_point(config(resume_from=str(old), seed=1, num_server_rounds=3, run_name="next")).server_round == 2
    with pytest.raises(ConfigError, match="allowed: '' or the absolute path"):
        config(resume_from="relative/folder")


def test_resume_refuses_another_number_of_simulated_nodes(tmp_path: Path) -> None:
    """A simulated node holds partition i of as many partitions as there are nodes: other nodes, other data."""
    old = tmp_path / "old"
    old.mkdir()
    _checkpointed_run(old, partition_counts=[10])
    extra = {
        "model": "2nn",
        "resume-from": str(old),
        "output-dir": str(tmp_path),
        "run-name": "next",
        "num-server-rounds": 3,
    }
    with pytest.raises(
        ConfigError,
        match=r"num-partitions=\[5\], but the run in .* trained on num-partitions=\[10\]; allowed: the same nodes",
    ):
        RunRequest.build(APP_DIR, [], nodes=5, extra=extra)
    assert RunRequest.build(APP_DIR, [], nodes=10, extra=extra).num_nodes == 10


def _sim_run(*overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sim", "run", "-c", " ".join(overrides)],
        cwd=APP_DIR,
        capture_output=True,
        text=True,
        env=os.environ,
        check=False,
    )


def _fingerprint(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


def test_bad_resume_folders_and_data_paths_fail_in_one_line_before_any_work(tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    _checkpointed_run(old)
    (old / METRICS_FILE).write_text("earlier results")
    checkpoint = (old / CHECKPOINT_FILE).read_bytes()
    (old / CHECKPOINT_FILE).write_bytes(checkpoint[: len(checkpoint) // 2])
    before = _fingerprint(old)
    cases = {
        f"resume-from={old}": "checkpoint.pt is corrupt or truncated",
        f"resume-from={tmp_path / 'gone'}": "no such folder",
        f"dataset={tmp_path / 'no-data'}": "run-config key 'dataset'",
    }
    for override, message in cases.items():
        result = _sim_run(override, f"output-dir={tmp_path}", "run-name=new")
        assert result.returncode == 2, result.stdout + result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: run-config key") and message in lines[0], lines
        assert result.stdout == ""
    assert _fingerprint(old) == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["old"]


# --- real runs ---------------------------------------------------------------------
