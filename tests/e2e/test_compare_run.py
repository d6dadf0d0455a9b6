"""`python -m sim compare` end to end: a real 2-strategy, 2-round comparison with its table, report and curves.

Every node holds two digits; the second strategy is Ditto with a setting of its own
(`--set`), which is also Ditto's end-to-end check (4 nodes, 2 rounds): its nodes'
personal models beat the global model on their own digits, stay on the nodes' disks,
and the report shows them beside the central accuracy.
"""

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
from tests.helpers import APP_DIR, personal_state_names, saved_personal_state

STRATEGIES = "fedavg,ditto"
SHARED = "model=2nn partitioner=shard classes-per-node=2"
NODES = 4


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
        "compare", "--strategies", STRATEGIES, "--set", "ditto", "ditto-lambda=0.1",
        "--rounds", "2", "--nodes", str(NODES), "--target", "0.5", "-c", SHARED, "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "compare run 1/3: fedavg seed 0" in result.stdout and "compare run 3/3: centralized seed 0" in result.stdout
    assert "[fedavg seed 0]" in result.stdout and "round 2/2 | central accuracy" in result.stdout

    with (out / "summary.csv").open() as file:
        reader = csv.DictReader(file)
        rows = list(reader)
    assert tuple(reader.fieldnames or ()) == COLUMNS
    assert [row["strategy"] for row in rows] == ["fedavg", "ditto", "centralized"]
    fedavg, ditto, centralized = rows
    for row in rows:
        assert (row["runs"], row["failed"]) == ("1", "0")
        assert 0 < float(row["final_accuracy_mean"]) <= float(row["best_accuracy_mean"]) <= 1.0
        assert row["final_accuracy_std"] == ""
    assert float(centralized["final_accuracy_mean"]) > 0.5
    fedavg_rounds = json.loads((out / "runs" / "fedavg-0" / "metrics.json").read_text())["rounds"]
    assert float(fedavg["final_accuracy_mean"]) > fedavg_rounds[0]["central_accuracy"] + 0.1
    two_rounds_of_2nn = 2 * NODES * 199_210 * 4 / 1e6
    for row in (fedavg, ditto):  # Ditto's personal models never travel
        assert float(row["total_mb_up"]) == pytest.approx(two_rounds_of_2nn, rel=0.01)
        assert float(row["total_mb"]) == pytest.approx(2 * two_rounds_of_2nn, rel=0.01)
    if fedavg["reached_target"] == "1":
        assert float(fedavg["mb_up_to_target"]) == pytest.approx(
            two_rounds_of_2nn / 2 * float(fedavg["rounds_to_target_mean"]), rel=0.01
        )

    metrics = json.loads((out / "runs" / "ditto-0" / "metrics.json").read_text())
    assert {k: metrics["run"]["config"][k] for k in ("ditto-lambda", "partitioner")} == {
        "ditto-lambda": 0.1,
        "partitioner": "shard",
    }
    last = metrics["rounds"][-1]
    assert last["personalized_accuracy_mean"] > last["federated_accuracy"]
    spread = [float(ditto[f"personalized_accuracy_{k}"]) for k in ("min", "mean", "max")]
    assert spread == pytest.approx([last[f"personalized_accuracy_{k}"] for k in ("min", "mean", "max")])
    assert 0 <= spread[0] <= spread[1] <= spread[2] <= 1
    assert fedavg["personalized_accuracy_mean"] != "" and centralized["personalized_accuracy_mean"] == ""
    saved = saved_personal_state(out / "runs" / "ditto-0")
    assert sorted(path.name for path in saved) == personal_state_names(NODES)

    report = (out / "report.md").read_text()
    for label in ("fedavg", "ditto", "centralized"):
        assert f"\n| {label} | 1 (0) | " in report
    low, mean, high = (last[f"personalized_accuracy_{k}"] for k in ("min", "mean", "max"))
    assert "nodes' own models [min, max]" in report and f"| {mean:.4f} [{low:.3f}, {high:.3f}] |" in report
    assert "identical round-0 central loss (fedavg " in report and "DIFFERENT" not in report
    assert "![accuracy per round and per megabyte](curves.png)" in report
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (
        out / "curves.png"
    ).stat().st_size > 20_000
    curves = json.loads((out / "curves.json").read_text())
    assert sorted(curves) == ["ditto", "fedavg"] and curves["ditto"]["round"] == [0, 1, 2]
    assert curves["ditto"]["personalized_accuracy_mean"][-1] == pytest.approx(mean)
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["centralized-0", "ditto-0", "fedavg-0"]
    runs = json.loads((out / "runs.json").read_text())["runs"]
    assert [(run["strategy"], run["seed"]) for run in runs] == [("fedavg", 0), ("ditto", 0), ("centralized", 0)]
    for run, row in zip(runs, rows, strict=True):
        assert run["final_accuracy"] == pytest.approx(float(row["final_accuracy_mean"]), abs=1e-4)
        assert run["curves"]["round"] == [0, 1, 2] and run["curves"]["central_accuracy"][-1] == run["final_accuracy"]
