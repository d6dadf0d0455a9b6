"""The bench's arithmetic: steady-state rounds, ratios against targets, one line per figure."""

from __future__ import annotations

import pytest

from sim.bench import TARGETS, Figure, ratio_figure, steady_state


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
