"""The bench's arithmetic: steady-state rounds, ratios against targets, one line per figure, the cohort picture."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sim.bench import TARGETS, Figure, Measurement, _Bench, bench_command, cohort_figures, ratio_figure, steady_state
from sim.bench_plot import cohort_series, plot_cohorts


def test_steady_state_skips_the_initial_evaluation_and_round_one() -> None:
    assert steady_state([0.5, 30.0, 2.0, 4.0]) == pytest.approx(3.0)
    assert steady_state([0.5, 30.0]) == pytest.approx(30.0)  # a single round is all there is


def test_a_ratio_figure_is_checked_against_its_target() -> None:
    figure = ratio_figure("steady", 2.3, 2.0, "s", ("simulation", "plain loop"), "steady")
    assert figure.value == pytest.approx(1.15) and figure.target == TARGETS["steady"]
    assert figure.met
    assert figure.line() == "[bench] steady: simulation 2.30s, plain loop 2.00s -> 1.15x (target <= 1.15x: met)"
    assert not ratio_figure("whole", 5.0, 2.0, "s", ("a", "b"), "whole").met


def test_a_speed_up_target_is_a_minimum_and_informative_figures_have_none() -> None:
    speed_up = Figure("gpu", 1.5, "x", "0.25 vs 1.0", TARGETS["gpu-clients"], at_least=True)
    assert not speed_up.met and "target >= 2x: MISSED" in speed_up.line()
    informative = Figure("overhead", 0.4, "s", "simulation 0.9s - plain loop 0.5s")
    assert informative.met is None and informative.line().endswith("-> 0.40s")


def _measurement(label: str, nodes: int, seconds: float, memory_mib: int) -> Measurement:
    return Measurement(
        label, nodes, 10 * seconds, [0.1, 5 * seconds, seconds, seconds], [0.1, 0.5, 0.8, 0.9], memory_mib << 20
    )


def test_cohort_figures_compare_each_cohort_with_its_floor_and_memory_with_the_smallest() -> None:
    cohorts = {
        "cnn": {
            10: (_measurement("simulation cnn-10", 10, 2.0, 4000), _measurement("plain loop cnn-10", 10, 2.0, 1000)),
            100: (
                _measurement("simulation cnn-100", 100, 2.2, 5000),
                _measurement("plain loop cnn-100", 100, 2.0, 1100),
            ),
        }
    }
    figures = {figure.name: figure for figure in cohort_figures(cohorts)}
    assert figures["steady-state seconds per round, cnn, 100 clients a round"].value == pytest.approx(1.1)
    memory = figures["peak memory, cnn, 100 vs 10 clients a round"]
    assert memory.value == pytest.approx(1.25) and memory.target == TARGETS["cohort-memory"] and memory.met
    assert figures["default workload: whole run"].value == pytest.approx(1.0)


def test_the_cohort_picture_draws_every_report(tmp_path: Path) -> None:
    runs = [
        {"label": label, "round_seconds": [0.1, 9.0, seconds, seconds]}
        for label, seconds in (("simulation 2nn-10", 1.0), ("plain loop 2nn-10", 0.9), ("simulation 2nn-100", 1.5))
    ]
    runs.append({"label": "plain loop 2nn-100", "round_seconds": [0.1, 9.0, 1.2, 1.2]})
    report = {
        "cohorts": {
            "2nn": {
                "10": {"simulation": "simulation 2nn-10", "plain_loop": "plain loop 2nn-10"},
                "100": {"simulation": "simulation 2nn-100", "plain_loop": "plain loop 2nn-100"},
            }
        },
        "runs": runs,
    }
    assert cohort_series(report) == {
        "2nn": {"simulation": [(10, 1.0), (100, 1.5)], "plain_loop": [(10, 0.9), (100, 1.2)]}
    }
    path = plot_cohorts({"before": report, "after": report}, tmp_path / "cohorts.png")
    assert path.read_bytes().startswith(b"\x89PNG")


def test_without_cuda_the_gpu_section_says_so_and_adds_no_figure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _Bench(tmp_path, tmp_path, rounds=1).gpu_section() == []
    assert "GPU section skipped: no CUDA device" in capsys.readouterr().out


def test_fewer_than_three_rounds_are_refused_before_any_run(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^--rounds 2 is not allowed; allowed: 3 or more"):
        bench_command(tmp_path, False, tmp_path / "bench.json", ("cohorts",), rounds=2)
    assert list(tmp_path.iterdir()) == []
