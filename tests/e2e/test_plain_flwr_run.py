"""Plain `flwr run .` after `python -m sim`: where relative outputs land, and how many nodes it gets.

Two checkouts of the project share one local SuperLink (one port), as two clones or
worktrees on one machine do. `python -m sim run --nodes 3` in checkout A leaves the
SuperLink running; `python -m sim` in checkout B, then a plain `flwr run .` there,
must write B's relative `output-dir` under B (the project folder the SuperLink runs
in) and use the documented default federation (10 nodes), not A's folder or the
3 nodes of the last `python -m sim run`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedapp.outputs import METRICS_FILE
from sim import flwr_cli
from sim.run import RunRequest, ensure_superlink
from sim.superlink import LocalSuperLink, flwr_environment, venv_executable
from tests.helpers import APP_DIR, free_port

DOCUMENTED_NODES = 10


@pytest.fixture
def own_superlink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalSuperLink]:
    """A Flower home and port of this test only (it restarts its SuperLink), stopped at the end."""
    monkeypatch.setenv("FLWR_HOME", str(tmp_path / "flwr-home"))
    monkeypatch.setenv("FLWR_LOCAL_SUPERLINK_HTTP_API_PORT", str(free_port()))
    link = LocalSuperLink.default()
    yield link
    link.stop()


@pytest.fixture
def other_checkout(tmp_path: Path) -> Path:
    """A second checkout of this project in another folder."""
    folder = tmp_path / "other-checkout"
    for package in ("fedapp", "strategies", "sim"):
        shutil.copytree(APP_DIR / package, folder / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(APP_DIR / "pyproject.toml", folder / "pyproject.toml")
    return folder


def test_plain_flwr_run_writes_under_its_project_with_the_documented_node_count(
    own_superlink: LocalSuperLink, other_checkout: Path
) -> None:
    # What `python -m sim run --nodes 3` does before it submits, in checkout A, then in checkout B.
    ensure_superlink(RunRequest.build(APP_DIR, [], nodes=3))
    ensure_superlink(RunRequest.build(other_checkout, [], nodes=3))

    run_name = f"plain-{uuid.uuid4().hex[:8]}"
    overrides = f'model="logreg" num-server-rounds=1 fraction-evaluate=0.0 run-name="{run_name}"'
    submitted = subprocess.run(
        [venv_executable("flwr"), "run", ".", "--format", "json", "-c", overrides],
        cwd=other_checkout,
        capture_output=True,
        text=True,
        env=flwr_environment(),
        check=True,
    )
    run_id = int(json.loads(submitted.stdout[submitted.stdout.find("{") :])["run-id"])
    status = flwr_cli.wait_finished(run_id, timeout=300)
    misplaced = APP_DIR / "outputs" / run_name
    expected = other_checkout / "outputs" / run_name
    try:
        assert status == flwr_cli.FINISHED_OK
        written = next(folder / METRICS_FILE for folder in (expected, misplaced) if (folder / METRICS_FILE).exists())
        metrics = json.loads(written.read_text())
        nodes = (metrics["run"]["partition_counts"], metrics["rounds"][1]["nodes_sampled"])
        assert nodes == ([DOCUMENTED_NODES], DOCUMENTED_NODES)
        assert written.parent == expected, (
            f"outputs not under the project that ran `flwr run .` but in {written.parent}"
        )
        log = subprocess.run(
            [venv_executable("flwr"), "log", str(run_id), "--show"],
            capture_output=True,
            text=True,
            env=flwr_environment(),
            check=True,
        ).stdout
        assert f"{DOCUMENTED_NODES} simulated SuperNodes" in log
        assert f"relative to {other_checkout}" in log
    finally:
        shutil.rmtree(misplaced, ignore_errors=True)
