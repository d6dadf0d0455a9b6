"""The comparison's numbers as pure functions: rounds and megabytes to target, mean ± std, summary rows."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from sim.report import MISSING, plot_privacy_utility, privacy_table
from sim.summary import (
    COLUMNS,
    RunResult,
    best_accuracy,
    final_accuracy,
    mean_std,
    rounds_to_target,
    summarize,
    total_traffic,
    traffic_to_target,
)


def records(accuracies: list[float], up: int = 100, down: int = 300) -> list[dict[str, float]]:
    """Round 0 (no traffic) then one record per accuracy with `up`/`down` bytes each."""
    rounds = [{"round": 0, "central_accuracy": 0.1}]
    return rounds + [
        {"round": i, "central_accuracy": a, "bytes_up": up, "bytes_down": down} for i, a in enumerate(accuracies, 1)
    ]


def result(label: str, seed: int, accuracies: list[float], status: str = "completed", **traffic: int) -> RunResult:
    return RunResult(
        label, seed, status, records(accuracies, **traffic), seconds=10.0 + seed, folder=f"runs/{label}-{seed}"
    )


def test_rounds_to_target_is_the_first_round_at_or_above_it() -> None:
    rounds = records([0.5, 0.91, 0.89, 0.95])
    assert rounds_to_target(rounds, 0.9) == 2
    assert rounds_to_target(rounds, 0.91) == 2
    assert rounds_to_target(rounds, 0.95) == 4
    assert rounds_to_target(rounds, 0.96) is None
    assert rounds_to_target(rounds, 0.05) == 0


def test_traffic_to_target_sums_rounds_one_to_the_target_round() -> None:
    rounds = records([0.5, 0.7, 0.9], up=1_000_000, down=3_000_000)
    assert traffic_to_target(rounds, 0.7) == (2_000_000, 6_000_000)
    assert traffic_to_target(rounds, 0.99) is None
    assert total_traffic(rounds) == (3_000_000, 9_000_000)
    assert final_accuracy(records([0.9, 0.8])) == 0.8 and best_accuracy(records([0.9, 0.8])) == 0.9


def test_mean_std_is_the_sample_standard_deviation() -> None:
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_std([0.5]) == (0.5, None)
    assert mean_std([]) == (None, None)


def test_summary_row_averages_completed_seeds_and_counts_failures() -> None:
    runs = [
        result("fedavg", 0, [0.8, 0.9, 0.92], up=2_000_000, down=4_000_000),
        result("fedavg", 1, [0.85, 0.88, 0.94], up=2_000_000, down=4_000_000),
        result("fedavg", 2, [0.99], status="failed (finished:failed)"),
    ]
    row = summarize("fedavg", runs, target=0.9)
    assert list(row) == list(COLUMNS)
    assert (row["runs"], row["failed"], row["reached_target"]) == (3, 1, 2)
    assert row["final_accuracy_mean"] == pytest.approx(0.93) and row["final_accuracy_std"] == pytest.approx(
        math.sqrt(2) * 0.01
    )
    assert row["best_accuracy_mean"] == pytest.approx(0.93)
    assert row["rounds_to_target_mean"] == 2.5 and row["rounds_to_target_std"] == pytest.approx(math.sqrt(0.5))
    assert row["mb_up_to_target"] == pytest.approx(5.0) and row["mb_down_to_target"] == pytest.approx(10.0)
    assert (row["total_mb_up"], row["total_mb_down"], row["total_mb"]) == (6.0, 12.0, 18.0)
    assert row["wall_seconds_mean"] == 10.5


def test_summary_of_a_strategy_that_never_reaches_the_target_or_always_fails() -> None:
    never = summarize("slow", [result("slow", 0, [0.5, 0.6])], target=0.9)
    assert never["reached_target"] == 0 and never["rounds_to_target_mean"] is None and never["mb_up_to_target"] is None
    assert never["final_accuracy_std"] is None
    failed = summarize("broken", [RunResult("broken", 0, "failed: no such run", [], 0.0, "runs/broken-0")], target=0.9)
    assert (failed["runs"], failed["failed"], failed["final_accuracy_mean"], failed["total_mb"]) == (1, 1, None, None)


def test_private_runs_get_a_table_and_a_figure_of_accuracy_against_epsilon(tmp_path: Path) -> None:
    def private(label: str, seed: int, accuracy: float, spent: float) -> RunResult:
        run = result(label, seed, [accuracy - 0.1, accuracy])
        for record in run.rounds[1:]:
            record["epsilon"] = spent
        return run

    settings = {
        "plain": {"dp": "none"},
        "z1": {"dp": "server-fixed", "dp-noise-multiplier": 1.0, "dp-delta": 1e-5, "client-sampling": "poisson"},
        "z2": {"dp": "server-fixed", "dp-noise-multiplier": 2.0, "dp-delta": 1e-5, "client-sampling": "fixed"},
    }
    rows = [
        summarize("plain", [result("plain", seed, [0.9]) for seed in (0, 1)], 0.8),
        summarize("z1", [private("z1", seed, 0.85 + seed / 100, 7.9039) for seed in (0, 1)], 0.8),
        summarize("z2", [private("z2", seed, 0.8, 83.94) for seed in (0, 1)], 0.8),
    ]
    assert rows[1]["final_epsilon_mean"] == 7.9039 and rows[0]["final_epsilon_mean"] is None
    table = privacy_table(rows, settings)
    assert f"| plain | {MISSING} | not private | {MISSING} | {MISSING} | 0.9000 ± 0.0000 |" in table
    assert "| z1 | 1.0 | 7.90 | 1e-05 | add-or-remove-one | 0.8550 ± 0.0071 |" in table
    assert "| z2 | 2.0 | 83.94 | 1e-05 | replace-one |" in table
    plot_privacy_utility(rows, settings, tmp_path / "privacy.png", "test")
    assert (tmp_path / "privacy.png").stat().st_size > 10_000
