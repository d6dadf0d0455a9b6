"""`python -m sim compare` end to end: a real 2-strategy, 2-round comparison with its table, report and curves."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sim.summary import COLUMNS
from sim.superlink import LocalSuperLink
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


def test_compare_runs_two_strategies_and_writes_table_report_and_curves(
    superlink: LocalSuperLink, tmp_path: Path
) -> None:
    out = tmp_path / "cmp"
    result = _sim(
        "compare", "--strategies", STRATEGIES, "--set", "small-lr", "learning-rate=0.01",
        "--rounds", "2", "--nodes", "4", "--target", "0.8", "-c", "model=2nn fraction-evaluate=0", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "compare run 1/3: fedavg seed 0" in result.stdout and "compare run 3/3: centralized seed 0" in result.stdout
    assert "[fedavg seed 0]" in result.stdout and "round 2/2 | central accuracy" in result.stdout

    with (out / "summary.csv").open() as file:
        reader = csv.DictReader(file)
        rows = list(reader)
    assert tuple(reader.fieldnames or ()) == COLUMNS
    assert [row["strategy"] for row in rows] == ["fedavg", "small-lr", "centralized"]
    for row in rows:
        assert (row["runs"], row["failed"]) == ("1", "0")
        assert 0.5 < float(row["final_accuracy_mean"]) <= float(row["best_accuracy_mean"]) <= 1.0
        assert row["final_accuracy_std"] == ""
    fedavg, small_lr, _ = rows
    assert float(fedavg["final_accuracy_mean"]) > float(small_lr["final_accuracy_mean"])
    two_rounds_of_2nn = 2 * 4 * 199_210 * 4 / 1e6
    assert float(fedavg["total_mb_up"]) == pytest.approx(two_rounds_of_2nn, rel=0.01)
    assert float(fedavg["total_mb"]) == pytest.approx(2 * two_rounds_of_2nn, rel=0.01)
    if fedavg["reached_target"] == "1":
        assert float(fedavg["mb_up_to_target"]) == pytest.approx(
            two_rounds_of_2nn / 2 * float(fedavg["rounds_to_target_mean"]), rel=0.01
        )

    report = (out / "report.md").read_text()
    for label in ("fedavg", "small-lr", "centralized"):
        assert f"\n| {label} | 1 (0) | " in report
    assert "identical round-0 central loss (fedavg " in report and "DIFFERENT" not in report
    assert "![accuracy per round and per megabyte](curves.png)" in report
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (
        out / "curves.png"
    ).stat().st_size > 20_000
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["centralized-0", "fedavg-0", "small-lr-0"]
    runs = json.loads((out / "runs.json").read_text())["runs"]
    assert [(run["strategy"], run["seed"]) for run in runs] == [("fedavg", 0), ("small-lr", 0), ("centralized", 0)]
    for run, row in zip(runs, rows, strict=True):
        assert run["final_accuracy"] == pytest.approx(float(row["final_accuracy_mean"]), abs=1e-4)
        assert run["curves"]["round"] == [0, 1, 2] and run["curves"]["central_accuracy"][-1] == run["final_accuracy"]
