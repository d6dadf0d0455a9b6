"""`python -m sim run` refuses bad input before starting anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fedapp.registry import STRATEGIES
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


def test_an_output_dir_that_cannot_be_created_fails_before_anything_starts(tmp_path: Path) -> None:
    """`/proc/x` passes every type check but no folder can be made there: one line, exit 2, no SuperLink."""
    home = tmp_path / "flwr-home"
    isolated = {**os.environ, "FLWR_HOME": str(home), "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": str(free_port())}
    try:
        result = subprocess.run(
            [sys.executable, "-m", "sim", "run", "-c", "output-dir=/proc/x"],
            cwd=APP_DIR,
            capture_output=True,
            text=True,
            env=isolated,
            timeout=300,
            check=False,
        )
    finally:  # without the check, a SuperLink was started and the run submitted: stop it
        subprocess.run(
            [sys.executable, "-m", "sim", "stop"], cwd=APP_DIR, env=isolated, capture_output=True, check=False
        )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: run-config key 'output-dir' = '/proc/x'"), lines
    assert "cannot be created or written" in lines[0]
    assert result.stdout == ""
    assert not home.exists()
