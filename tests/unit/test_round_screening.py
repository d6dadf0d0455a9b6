"""Round-relative screens: claimed examples must be sane and are capped, norm outliers are rejected."""

from __future__ import annotations

import math

import pytest

from strategies.round_screening import CLAIM, NORM_OUTLIER, capped_claims, claim_problem, norm_outliers


@pytest.mark.parametrize("claim", [0, -1, -1e9, math.nan, math.inf, -math.inf, 2.5, "12", None, True])
def test_claims_that_are_not_finite_whole_numbers_are_rejected(claim: object) -> None:
    problem = claim_problem(claim)
    assert problem is not None and problem.kind == CLAIM
    assert "num-examples" in problem.detail


@pytest.mark.parametrize("claim", [1, 600, 600.0, 10**9])
def test_finite_whole_claims_are_accepted(claim: float) -> None:
    assert claim_problem(claim) is None


def test_a_huge_claim_is_capped_at_ratio_times_the_median() -> None:
    assert capped_claims([100, 120, 80, 1e9], 10.0) == [100.0, 120.0, 80.0, 1100.0]
    assert capped_claims([100, 120, 80, 1e9], 0.0) == [100.0, 120.0, 80.0, 1e9], "0 turns the cap off"


def test_claims_are_left_alone_below_three_replies() -> None:
    assert capped_claims([1, 1e9], 10.0) == [1.0, 1e9]


def test_honest_spread_of_claims_is_not_capped() -> None:
    claims = [5, 40, 300, 90, 12]
    assert capped_claims(claims, 10.0) == [float(c) for c in claims]


def test_an_update_far_above_the_median_norm_is_rejected() -> None:
    verdicts = norm_outliers([0.8, 1.1, 1.0, 1e6, 0.9], 10.0)
    assert [v is None for v in verdicts] == [True, True, True, False, True]
    assert verdicts[3].kind == NORM_OUTLIER and "median norm 1" in verdicts[3].detail


def test_norm_screen_needs_three_replies_and_a_positive_ratio() -> None:
    assert norm_outliers([1.0, 1e6], 10.0) == [None, None]
    assert norm_outliers([1.0, 1.0, 1e6], 0.0) == [None, None, None]


def test_a_minority_cannot_move_the_median_enough_to_hide() -> None:
    verdicts = norm_outliers([1.0, 1.2, 0.9, 1e6, 1e6], 10.0)
    assert [v is not None for v in verdicts] == [False, False, False, True, True]
