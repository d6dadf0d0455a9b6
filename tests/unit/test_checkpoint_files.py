"""`resume-from` edge cases: the checkpoint file named instead of its folder, a truncated file, a pickled payload."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch

from fedapp.checkpoint import CHECKPOINT_FILE, resume_point
from fedapp.config import ConfigError
from tests.unit.test_reliability_checks import _checkpointed_run, config


def test_resume_from_may_name_the_checkpoint_file_itself(tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    _checkpointed_run(old, seed=1)
    resumed = resume_point(config(resume_from=str(old / CHECKPOINT_FILE), seed=1, num_server_rounds=3))
    assert resumed is not None and resumed.server_round == 2


def test_a_truncated_checkpoint_is_refused_in_whole_sentences(tmp_path: Path) -> None:
    """torch's message runs on for paragraphs; the refusal keeps its first sentence, not a cut at 200 characters."""
    old = tmp_path / "old"
    old.mkdir()
    _checkpointed_run(old)
    checkpoint = (old / CHECKPOINT_FILE).read_bytes()
    (old / CHECKPOINT_FILE).write_bytes(checkpoint[: len(checkpoint) // 2])
    with pytest.raises(ConfigError) as caught:
        resume_point(config(resume_from=str(old)))
    message = str(caught.value)
    assert "\n" not in message
    assert "is corrupt or truncated (RuntimeError: PytorchStreamReader failed reading zip archive: " in message
    assert re.search(r"\(RuntimeError: [^()]*\.\); allowed: the folder of an earlier run", message), message


class _Payload:
    """A pickled object that would create `path` if it were ever unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def test_a_checkpoint_holding_a_pickled_payload_is_refused_in_one_line_without_running_it(tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    marker = tmp_path / "payload-ran"
    torch.save({"format": 1, "round": _Payload(marker)}, old / CHECKPOINT_FILE)
    with pytest.raises(ConfigError) as caught:
        resume_point(config(resume_from=str(old)))
    message = str(caught.value)
    assert message.startswith("run-config key 'resume-from' = ") and "\n" not in message
    assert "holds pickled Python objects, which fedapp does not load" in message
    assert not marker.exists(), "weights_only loading never runs a payload"
