"""Robust aggregation: hand-computed cases, and Flower's Krum, Bulyan, FedMedian, FedTrimmedAvg on the same replies."""

from __future__ import annotations

import math

import numpy as np
import pytest
from flwr.app import ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp.strategy import Bulyan, FedMedian, FedTrimmedAvg, Krum, MultiKrum
from flwr.serverapp.strategy import Strategy as FlowerStrategy

import strategies.robust_aggregation as robust
from strategies.aggregation import difference, weighted_average
from strategies.arrays import Arrays, to_numpy, to_record
from strategies.protocol import ARRAYS, CONFIG, METRICS, NUM_EXAMPLES
from strategies.robust_aggregation import (
    BULYAN,
    CENTERED_CLIPPING,
    KRUM,
    MEAN,
    MEDIAN,
    MULTI_KRUM,
    RULES,
    TRIMMED_MEAN,
    AggregationRule,
    robust_average,
)
from tests.helpers import reply_from

RNG = np.random.default_rng(25)


def vectors(*rows: list[float]) -> list[Arrays]:
    """One update per row, as a float64 array 'w' plus a BatchNorm-style integer step counter.

    The counters (0, 10, 20, ...) would change Krum's distances if they were measured: they are not.
    """
    return [{"w": np.array(row, dtype=float), "steps": np.array(10 * i, dtype=np.int64)} for i, row in enumerate(rows)]


def aggregate(rule: AggregationRule, updates: list[Arrays], weights: list[float] | None = None, **kw: Arrays) -> Arrays:
    return robust_average(updates, weights or [1.0] * len(updates), rule, **kw)


def test_median_is_coordinatewise_for_odd_and_even_counts() -> None:
    updates = vectors([1, 5, -2], [2, 0, 7], [9, 4, 1])
    np.testing.assert_array_equal(aggregate(AggregationRule(MEDIAN), updates)["w"], [2, 4, 1])
    updates = vectors([1, 5, -2], [2, 0, 7], [9, 4, 1], [3, 1, 0])
    np.testing.assert_array_equal(aggregate(AggregationRule(MEDIAN), updates)["w"], [2.5, 2.5, 0.5])


@pytest.mark.parametrize(("beta", "expected"), [(0.0, 22.0), (0.19, 22.0), (0.2, 3.0), (0.3, 3.0), (0.4, 3.0)])
def test_trimmed_mean_drops_floor_beta_n_from_each_end(beta: float, expected: float) -> None:
    """n = 5: beta 0.19 trims floor(0.95) = 0 values (the plain mean), 0.2 and 0.3 one per end, 0.4 two."""
    updates = vectors([3], [100], [1], [4], [2])
    assert aggregate(AggregationRule(TRIMMED_MEAN, trim_fraction=beta), updates)["w"][0] == pytest.approx(expected)


def test_krum_picks_the_update_closest_to_its_neighbours_and_multi_krum_averages_the_best() -> None:
    """f = 1, n = 5, so 2 neighbours: scores 5, 2, 3.25, 8.5 and 18916.25 for 0, 1, 2, 3.5, 100."""
    updates = vectors([0], [1], [2], [3.5], [100])
    weights = [2.0, 1.0, 3.0, 1.0, 1.0]
    np.testing.assert_array_equal(aggregate(AggregationRule(KRUM, byzantine=1), updates, weights)["w"], [1.0])
    three = AggregationRule(MULTI_KRUM, byzantine=1, selected=3)
    assert aggregate(three, updates, weights)["w"][0] == pytest.approx((0 * 2 + 1 * 1 + 2 * 3) / 6)
    distances = robust.squared_distances(updates, ["w"])
    np.testing.assert_allclose(robust.krum_scores(distances, 1), [5, 2, 3.25, 8.5, 96.5**2 + 98**2])


def test_krum_distances_span_all_floating_point_arrays_together() -> None:
    """Split over two arrays, the points of the previous test score and select the same."""
    updates = [{"a": np.array([x / 2]), "b": np.array([x / 2, x / 2, x / 2])} for x in (0.0, 1.0, 2.0, 3.5, 100.0)]
    result = aggregate(AggregationRule(KRUM, byzantine=1), updates)
    np.testing.assert_array_equal(result["a"], [0.5])
    np.testing.assert_array_equal(result["b"], [0.5, 0.5, 0.5])


def test_bulyan_selects_by_krum_then_averages_the_values_closest_to_the_median() -> None:
    """f = 1, n = 7: the 5 best Krum scores exclude 50 and -60; per coordinate the 3 closest to the median."""
    first = [0, 1, 2, 3, 4, 50, -60]
    second = [0.5, -0.1, 0.0, 0.1, 0.9, 0.0, 0.0]
    updates = vectors(*([a, b] for a, b in zip(first, second, strict=True)))
    # selected first coordinates 0..4: median 2, closest 1, 2, 3; second: median 0.1, closest 0.1, 0, -0.1
    np.testing.assert_allclose(aggregate(AggregationRule(BULYAN, byzantine=1), updates)["w"], [2.0, 0.0], atol=1e-15)


def test_centered_clipping_clips_each_difference_to_tau_around_the_reference() -> None:
    updates = vectors([3, 4], [0, 0.5])
    rule = AggregationRule(CENTERED_CLIPPING, centered_clipping_tau=1.0)
    # from zero: (3, 4) has norm 5 and is clipped to (0.6, 0.8); (0, 0.5) is kept
    np.testing.assert_allclose(aggregate(rule, updates)["w"], [0.3, 0.65])
    # from (0, 4): differences (3, 0) -> (1, 0) and (0, -3.5) -> (0, -1)
    np.testing.assert_allclose(aggregate(rule, updates, reference={"w": np.array([0.0, 4.0])})["w"], [0.5, 3.5])
    # a second iteration starts from (0.3, 0.65): (2.7, 3.35) is clipped, (-0.3, -0.15) is not
    norm = math.hypot(2.7, 3.35)
    expected = [0.3 + (2.7 / norm - 0.3) / 2, 0.65 + (3.35 / norm - 0.15) / 2]
    twice = AggregationRule(CENTERED_CLIPPING, centered_clipping_tau=1.0, centered_clipping_iterations=2)
    np.testing.assert_allclose(aggregate(twice, updates)["w"], expected)


def test_centered_clipping_with_a_large_tau_is_the_uniform_mean() -> None:
    updates = [{"w": RNG.normal(size=(3, 2))} for _ in range(4)]
    rule = AggregationRule(CENTERED_CLIPPING, centered_clipping_tau=1e6)
    uniform = weighted_average(updates, [1.0] * 4)["w"]
    np.testing.assert_allclose(aggregate(rule, updates, [5.0, 1.0, 1.0, 1.0])["w"], uniform, rtol=1e-12)


def test_mean_is_the_weighted_average_bit_for_bit() -> None:
    updates = [{"w": RNG.normal(size=(5, 2)).astype(np.float32), "n": np.array(3, dtype=np.int64)} for _ in range(3)]
    weights = [3.0, 1.0, 9.0]
    expected = weighted_average(updates, weights)
    for key, value in robust_average(updates, weights, AggregationRule(MEAN)).items():
        assert value.dtype == expected[key].dtype and value.tobytes() == expected[key].tobytes()


@pytest.mark.parametrize("name", [name for name in RULES if name != MEAN])
def test_integer_counters_come_from_the_weighted_mean_and_dtypes_are_kept(name: str) -> None:
    updates = [
        {"w": RNG.normal(size=(2, 3)).astype(np.float32), "bn.steps": np.array(step, dtype=np.int64)}
        for step in (60, 30, 60, 30, 60, 30, 60)
    ]
    result = robust_average(updates, [1.0] * 7, AggregationRule(name, byzantine=1, selected=2))
    assert list(result) == ["w", "bn.steps"]
    assert result["w"].dtype == np.float32 and result["w"].shape == (2, 3)
    assert result["bn.steps"].dtype == np.int64 and result["bn.steps"].shape == () and int(result["bn.steps"]) == 47


@pytest.mark.parametrize("name", [name for name in RULES if name != MEAN])
def test_rules_stay_near_the_honest_updates_when_two_of_eleven_attack(name: str) -> None:
    """Nine honest updates near 0.1, two attackers at 1000: every robust rule lands near 0.1, the mean does not."""
    honest = [{"w": 0.1 + 0.01 * RNG.normal(size=50)} for _ in range(9)]
    attackers = [{"w": np.full(50, 1000.0)} for _ in range(2)]
    updates = honest + attackers
    rule = AggregationRule(name, trim_fraction=0.2, byzantine=2, selected=3, centered_clipping_tau=0.5)
    result = aggregate(rule, updates, reference={"w": np.full(50, 0.1)})
    assert np.max(np.abs(result["w"] - 0.1)) < 0.05
    assert np.min(aggregate(AggregationRule(MEAN), updates)["w"]) > 100


@pytest.mark.parametrize("name", [name for name in RULES if name != MEAN])
def test_column_blocks_give_the_result_of_one_block(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With blocks of 20 values (4 columns of 5 updates) the rules must give what one block gives."""
    updates = [{"w": RNG.normal(size=(7, 3)), "b": RNG.normal(size=5)} for _ in range(7)]
    rule = AggregationRule(name, trim_fraction=0.2, byzantine=1, selected=3, centered_clipping_tau=1.0)
    reference = {"w": np.zeros((7, 3)), "b": np.ones(5)}
    whole = aggregate(rule, updates, reference=reference)
    monkeypatch.setattr(robust, "BLOCK_ENTRIES", 20)
    blocked = aggregate(rule, updates, reference=reference)
    for key, value in whole.items():
        np.testing.assert_allclose(blocked[key], value, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    ("settings", "key", "allowed"),
    [
        ({"name": "average"}, "'aggregation' = 'average'", "mean, median, trimmed-mean"),
        ({"trim_fraction": 0.5}, "'aggregation-trim-fraction' = 0.5", "[0, 0.5)"),
        ({"trim_fraction": -0.1}, "'aggregation-trim-fraction' = -0.1", "[0, 0.5)"),
        ({"byzantine": -1}, "'aggregation-byzantine' = -1", "integer >= 0"),
        ({"byzantine": 1.5}, "'aggregation-byzantine' = 1.5", "integer >= 0"),
        ({"selected": 0}, "'aggregation-selected' = 0", "integer >= 1"),
        ({"centered_clipping_tau": 0.0}, "'aggregation-centered-clipping-tau' = 0.0", "finite number > 0"),
        ({"centered_clipping_tau": math.inf}, "'aggregation-centered-clipping-tau' = inf", "finite number > 0"),
        ({"centered_clipping_iterations": 0}, "'aggregation-centered-clipping-iterations' = 0", "integer >= 1"),
    ],
)
def test_bad_settings_are_refused_in_one_line(settings: dict[str, object], key: str, allowed: str) -> None:
    with pytest.raises(ValueError, match="aggregation setting") as refused:
        AggregationRule(**settings)  # type: ignore[arg-type]
    message = str(refused.value)
    assert "\n" not in message and key in message and allowed in message


@pytest.mark.parametrize(
    ("rule", "count", "needed"),
    [
        (AggregationRule(KRUM, byzantine=1), 4, 5),
        (AggregationRule(MULTI_KRUM, byzantine=1, selected=5), 5, 6),
        (AggregationRule(BULYAN, byzantine=1), 6, 7),
        (AggregationRule(BULYAN, byzantine=0), 2, 3),
    ],
)
def test_too_few_replies_for_the_guarantee_are_refused(rule: AggregationRule, count: int, needed: int) -> None:
    assert rule.min_replies == needed
    updates = [{"w": np.array([float(i)])} for i in range(count)]
    with pytest.raises(ValueError, match=f"'{rule.name}' with byzantine = {rule.byzantine}.* needs at least {needed}"):
        robust_average(updates, [1.0] * count, rule)
    with pytest.raises(ValueError, match="2 updates but 1 weights"):
        robust_average(updates[:2], [1.0], AggregationRule(MEDIAN))


def test_dp_accepts_only_the_mean() -> None:
    assert AggregationRule(MEAN).privacy_problem() is None
    for name in RULES[1:]:
        problem = AggregationRule(name).privacy_problem()
        assert problem is not None and "\n" not in problem and f"'{name}' cannot be combined with dp" in problem


# Flower's strategies on the same replies. They aggregate whole models w_k, we aggregate updates w_k - w and
# the server adds w back: the median, trimmed mean and Krum's selection commute with that shift, so results
# agree up to the float32 rounding of w_k - w and w + update (a few ulp of values near 1: atol 1e-6).


def _replies(
    monkeypatch: pytest.MonkeyPatch, count: int, examples: list[int] | None = None
) -> tuple[Arrays, list[Message]]:
    """A global model and `count` replies of float32 models at different distances from it."""
    global_arrays = {"w": RNG.normal(size=(4, 3)).astype(np.float32), "b": RNG.normal(size=3).astype(np.float32)}
    replies = []
    for node_id in range(1, count + 1):
        request = Message(
            RecordDict({ARRAYS: to_record(global_arrays), CONFIG: ConfigRecord()}),
            dst_node_id=node_id,
            message_type=MessageType.TRAIN,
        )
        scale = 0.1 * node_id if node_id < count - 1 else 5.0 * node_id  # the last two are far off
        model = {
            key: (value + scale * RNG.normal(size=value.shape)).astype(np.float32)
            for key, value in global_arrays.items()
        }
        metrics = MetricRecord({NUM_EXAMPLES: examples[node_id - 1] if examples else 10 * node_id})
        replies.append(
            reply_from(node_id, request, RecordDict({ARRAYS: to_record(model), METRICS: metrics}), monkeypatch)
        )
    return global_arrays, replies


def _ours(global_arrays: Arrays, replies: list[Message], rule: AggregationRule) -> Arrays:
    """The server's new model with `rule` on the replies' updates (server learning rate 1)."""
    updates = [difference(to_numpy(reply.content[ARRAYS]), global_arrays) for reply in replies]
    weights = [float(reply.content[METRICS][NUM_EXAMPLES]) for reply in replies]
    average = robust_average(updates, weights, rule)
    return {key: global_arrays[key] + average[key] for key in global_arrays}


@pytest.mark.parametrize(
    ("rule", "flower"),
    [
        (AggregationRule(MEDIAN), FedMedian()),
        (AggregationRule(TRIMMED_MEAN, trim_fraction=0.2), FedTrimmedAvg(beta=0.2)),
        (AggregationRule(TRIMMED_MEAN, trim_fraction=0.3), FedTrimmedAvg(beta=0.3)),
        (AggregationRule(KRUM, byzantine=2), Krum(num_malicious_nodes=2)),
        (AggregationRule(MULTI_KRUM, byzantine=2, selected=4), MultiKrum(num_malicious_nodes=2, num_nodes_to_select=4)),
        (AggregationRule(BULYAN, byzantine=1), Bulyan(num_malicious_nodes=1)),
    ],
    ids=["median", "trimmed-0.2", "trimmed-0.3", "krum", "multi-krum", "bulyan"],
)
def test_rules_agree_with_flowers_strategies_on_the_same_replies(
    rule: AggregationRule, flower: FlowerStrategy, message_identity: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seven replies (Multi-Krum's average weighted by the examples, as Flower's)."""
    global_arrays, replies = _replies(monkeypatch, 7)
    ours = _ours(global_arrays, replies, rule)  # first: Flower's median, trimmed mean and Bulyan consume the replies
    theirs, _ = flower.aggregate_train(1, replies)
    assert theirs is not None
    for key, value in to_numpy(theirs).items():
        assert ours[key].dtype == np.float32
        np.testing.assert_allclose(ours[key], value, atol=1e-6)
