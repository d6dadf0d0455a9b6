"""The comparison's numbers as pure functions: rounds and megabytes to target, mean ± std, summary rows."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from sim.report import (
    MISSING,
    markdown_table,
    plot_curves,
    plot_privacy_utility,
    privacy_table,
    write_curves_json,
    write_report,
    write_runs_json,
)
from sim.summary import (
    COLUMNS,
    R2,
    RunResult,
    best_value,
    client_accuracies,
    columns,
    final_value,
    mean_std,
    rounds_to_target,
    summarize,
    total_traffic,
    traffic_to_target,
    upload_per_client_round,
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
    assert final_value(records([0.9, 0.8])) == 0.8 and best_value(records([0.9, 0.8])) == 0.9


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


def test_a_regression_comparison_ranks_by_r2_and_reports_rmse_and_mae() -> None:
    def run(seed: int, r2: list[float]) -> RunResult:
        rounds = [
            {"round": i, "central_r2": value, "central_rmse": 60 - 10 * value, "central_mae": 50 - 10 * value}
            for i, value in enumerate(r2)
        ]
        return RunResult("fedavg", seed, "completed", rounds, 1.0, "x")

    row = summarize("fedavg", [run(0, [0.0, 0.3, 0.5]), run(1, [0.0, 0.45, 0.4])], target=0.4, metric=R2)
    assert list(row) == list(columns(R2)) and "final_rmse_mean" in row and "target_r2" in row
    assert row["final_r2_mean"] == pytest.approx(0.45) and row["best_r2_mean"] == pytest.approx(0.475)
    assert row["final_rmse_mean"] == pytest.approx(55.5) and row["rounds_to_target_mean"] == 1.5
    table = markdown_table([row], R2)
    assert "final R²" in table and "final RMSE" in table and "0.4500 ± 0.0707" in table


def test_personalized_accuracy_is_the_last_spread_averaged_over_seeds(tmp_path: Path) -> None:
    runs = []
    for seed, (mean, low, high) in enumerate([(0.9, 0.7, 1.0), (0.8, 0.5, 0.9)]):
        run = result("ditto", seed, [0.5, 0.6])
        run.rounds[1].update(
            personalized_accuracy_mean=0.1, personalized_accuracy_min=0.0, personalized_accuracy_max=0.2
        )
        run.rounds[2].update(
            personalized_accuracy_mean=mean, personalized_accuracy_min=low, personalized_accuracy_max=high
        )
        runs.append(run)
    row = summarize("ditto", runs, target=0.9)
    assert row["personalized_accuracy_mean"] == pytest.approx(0.85)
    assert row["personalized_accuracy_std"] == pytest.approx(math.sqrt(0.005))
    assert (row["personalized_accuracy_min"], row["personalized_accuracy_max"]) == pytest.approx((0.6, 0.95))
    plain = summarize("fedavg", [result("fedavg", 0, [0.5])], target=0.9)
    assert plain["personalized_accuracy_mean"] is None and plain["personalized_accuracy_min"] is None
    table = markdown_table([row, plain])
    assert "| 0.8500 ± 0.0707 [0.600, 0.950] |" in table and "| \u2013 |" in table
    curves = {"ditto": [r.rounds for r in runs], "fedavg": [plain_rounds(0.5)]}
    plot_curves(curves, None, 0.9, tmp_path / "c.png", "t")
    assert (tmp_path / "c.png").stat().st_size > 10_000
    write_curves_json(curves, tmp_path / "c.json")
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["ditto"]["round"] == [0, 1, 2] and data["ditto"]["runs"] == 2
    assert data["ditto"]["central_accuracy_mean"] == pytest.approx([0.1, 0.5, 0.6])
    assert data["ditto"]["central_accuracy_std"] == pytest.approx([0, 0, 0])
    assert data["ditto"]["cumulative_mb_mean"] == pytest.approx([0, 400e-6, 800e-6])
    assert data["ditto"]["personalized_accuracy_mean"] == [None, pytest.approx(0.1), pytest.approx(0.85)]
    assert data["ditto"]["personalized_accuracy_std"][2] == pytest.approx(math.sqrt(0.005))
    assert data["fedavg"]["central_accuracy_std"] is None and "personalized_accuracy_mean" not in data["fedavg"]


def plain_rounds(accuracy: float) -> list[dict[str, float]]:
    return records([accuracy, accuracy])


def test_client_models_and_upload_per_client_round_are_summarised_where_runs_report_them() -> None:
    def distilled(seed: int, clients: list[float]) -> RunResult:
        rounds = records([0.5, 0.6], up=3_000)
        for record, accuracy in zip(rounds[1:], clients, strict=True):
            record.update({"client_accuracy_mean": accuracy, "nodes_replied": 3})
        return RunResult("fedmd", seed, "completed", rounds, 1.0, "runs/fedmd")

    row = summarize("fedmd", [distilled(0, [0.7, 0.6]), distilled(1, [0.8, 0.9])], target=0.9)
    assert row["client_accuracy_final_mean"] == pytest.approx(0.75)
    assert row["client_accuracy_final_std"] == pytest.approx(math.sqrt(2) * 0.15)
    assert row["client_accuracy_best_mean"] == pytest.approx(0.8)
    assert row["upload_bytes_per_client_round"] == pytest.approx(1_000)
    plain = summarize("fedavg", [result("fedavg", 0, [0.9])], target=0.9)
    assert plain["client_accuracy_final_mean"] is None and plain["upload_bytes_per_client_round"] is None
    uneven = [
        {"round": 0},
        {"round": 1, "bytes_up": 600, "nodes_replied": 3},
        {"round": 2, "bytes_up": 100, "nodes_replied": 1},
    ]
    assert upload_per_client_round(uneven) == 175
    assert client_accuracies(records([0.9])) == []


def test_runs_json_keeps_each_seeds_figures_and_the_curves_its_runs_record(tmp_path: Path) -> None:
    distilled = result("fedmd", 1, [0.51234, 0.9], up=2_000)
    for record, clients in zip(distilled.rounds, [None, 0.4, 0.7], strict=True):
        record.update({"client_accuracy_mean": clients, "nodes_replied": 2, "clients": [{"node": "x"}]})
    failed = RunResult("fedavg", 0, "failed: no such run", [], 3.0, "runs/fedavg-0")
    path = tmp_path / "runs.json"
    write_runs_json("python -m sim compare ...", [result("fedavg", 1, [0.95]), distilled, failed], 0.9, path)
    document = json.loads(path.read_text())
    assert (document["command"], document["target_accuracy"]) == ("python -m sim compare ...", 0.9)
    fedavg, fedmd, broken = document["runs"]
    assert (fedavg["strategy"], fedavg["seed"], fedavg["rounds_to_target"], fedavg["upload_bytes"]) == (
        "fedavg",
        1,
        1,
        None,
    )
    assert fedavg["curves"] == {"round": [0, 1], "central_accuracy": [0.1, 0.95]}
    assert (fedmd["final_accuracy"], fedmd["best_accuracy"], fedmd["rounds_to_target"]) == (0.9, 0.9, 2)
    assert fedmd["upload_bytes"] == 1_000 and fedmd["wall_seconds"] == 11.0
    assert fedmd["curves"]["central_accuracy"] == [0.1, 0.5123, 0.9]
    assert fedmd["curves"]["client_accuracy_mean"] == [None, 0.4, 0.7]
    assert set(fedmd["curves"]) == {"round", "central_accuracy", "client_accuracy_mean", "nodes_replied"}
    assert (broken["status"], broken["final_accuracy"], broken["curves"]) == ("failed: no such run", None, {})
    assert len(path.read_text().splitlines()) == 5  # a header line, one line per run, the closing line


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


@pytest.mark.parametrize(("seeds", "said"), [(1, "(1 seed)."), (3, "(3 seeds).")])
def test_the_report_counts_its_seeds_in_proper_english(tmp_path: Path, seeds: int, said: str) -> None:
    runs = [result("fedavg", seed, [0.8, 0.95]) for seed in range(seeds)]
    write_report(
        tmp_path / "report.md",
        "python -m sim compare",
        [summarize("fedavg", runs, 0.9)],
        runs,
        {"fedavg": {"seed": 0}},
        [],
    )
    text = (tmp_path / "report.md").read_text()
    assert said in text and "(1 seeds)" not in text


def test_the_report_names_the_attack_of_attacked_runs_only(tmp_path: Path) -> None:
    runs = [result(label, 0, [0.8, 0.9]) for label in ("clean", "attacked")]
    settings = {
        "clean": {"attack": "none", "attackers": "", "attack-scale": -1.0},
        "attacked": {"attack": "sign-flip", "attackers": 0.2, "attack-scale": -1.0},
    }
    rows = [summarize(label, [run], 0.85) for label, run in zip(settings, runs, strict=True)]
    write_report(tmp_path / "report.md", "python -m sim compare", rows, runs, settings, [])
    text = (tmp_path / "report.md").read_text()
    assert "## Attack" in text and "- attacked: `sign-flip` by `0.2`" in text and "- clean:" not in text
    write_report(tmp_path / "clean.md", "python -m sim compare", rows[:1], runs[:1], {"clean": settings["clean"]}, [])
    assert "## Attack" not in (tmp_path / "clean.md").read_text()
