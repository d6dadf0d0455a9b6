"""`python -m sim run` refuses bad input before starting anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fedapp.registry import STRATEGIES
from tests.helpers import APP_DIR


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
