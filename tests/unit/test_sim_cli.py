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


def test_more_nodes_than_the_embedded_mnist_has_samples_are_refused() -> None:
    result = _sim("run", "--nodes", "4001")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: --nodes = 4001 exceeds the 4000 training samples of the embedded MNIST")


def test_bench_rejects_unknown_sections() -> None:
    result = _sim("bench", "--sections", "cohorts,warp")
    assert result.returncode == 2
    assert "--sections warp is not allowed; allowed: cohorts, overhead, scale, report, gpu" in result.stderr


def _strategy_names() -> list[str]:
    return list(STRATEGIES)
