"""`python -m sim run` refuses bad input before starting anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import sim.__main__ as sim_main
from fedapp.registry import STRATEGIES
from sim.superlink import LocalSuperLink
from tests.helpers import APP_DIR, free_port


def _sim(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sim", *arguments],
        cwd=APP_DIR,
        capture_output=True,
        text=True,
        env=os.environ,
        check=False,
    )


def test_cli_rejects_bad_config_before_starting_anything(tmp_path: Path) -> None:
    result = _sim("run", "-c", "strategy=nope")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: run-config key 'strategy' = 'nope' is not allowed; allowed: {', '.join(_strategy_names())}"
    ]
    assert result.stdout == ""


def _strategy_names() -> list[str]:
    return list(STRATEGIES)


def test_an_output_dir_that_cannot_be_created_fails_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`/proc/x` passes every type check but no folder can be made there: one line, exit 2, no SuperLink."""
    home = tmp_path / "flwr-home"
    monkeypatch.setenv("FLWR_HOME", str(home))
    monkeypatch.setenv("FLWR_LOCAL_SUPERLINK_HTTP_API_PORT", str(free_port()))
    try:
        code = sim_main.main(["run", "-c", "output-dir=/proc/x"])
    finally:  # without the check, a SuperLink was started and the run submitted: stop it
        LocalSuperLink.default().stop()
    captured = capsys.readouterr()
    assert code == 2, captured.out[-2000:] + captured.err[-2000:]
    assert captured.err.strip().splitlines() == [
        "error: run-config key 'output-dir' = '/proc/x' cannot be created or written (No such file or directory); "
        "allowed: a folder this user can create and write"
    ]
    assert captured.out == ""
    assert not home.exists()
