"""Aggregation math and our FedAvg strategy, checked against Flower's own FedAvg."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg as FlowerFedAvg

from strategies.aggregation import aggregation_weights, difference, global_norm, weighted_average
from strategies.arrays import to_numpy, to_record
from strategies.fedavg import FedAvg
from strategies.protocol import ARRAYS, CONFIG, METRICS, NUM_EXAMPLES, TRAIN_LOSS
from strategies.server_optimizer import ServerOptimizer
from strategies.validation import weights_problem
from tests.helpers import reply_from

RNG = np.random.default_rng(0)


def random_model() -> dict[str, np.ndarray]:
    return {"w": RNG.normal(size=(4, 3)).astype(np.float32), "b": RNG.normal(size=3).astype(np.float32)}


def test_weighted_average_is_the_weighted_mean() -> None:
    models = [random_model() for _ in range(3)]
    average = weighted_average(models, [1.0, 2.0, 7.0])
    for key in ("w", "b"):
        expected = (models[0][key] * 1 + models[1][key] * 2 + models[2][key] * 7) / 10
        np.testing.assert_allclose(average[key], expected, rtol=1e-6)
        assert average[key].dtype == np.float32
    with pytest.raises(ValueError, match="positive"):
        weighted_average(models, [0.0, 0.0, 0.0])


def test_weights_follow_the_weighting_setting() -> None:
    assert aggregation_weights([10, 30], "examples") == [10.0, 30.0]
    assert aggregation_weights([10, 30], "uniform") == [1.0, 1.0]


def test_records_keep_zero_dimensional_arrays_as_they_are() -> None:
    """A batch norm's `num_batches_tracked` is 0-d; averaged and sent back, it must stay 0-d."""
    arrays = {"bn.num_batches_tracked": np.array(7, dtype=np.int64), "w": np.ones((2, 3), dtype=np.float32)[:, ::2]}
    restored = to_numpy(to_record(weighted_average([arrays, arrays], [1.0, 3.0])))
    assert restored["bn.num_batches_tracked"].shape == () and restored["bn.num_batches_tracked"] == 7
    assert restored["w"].shape == (2, 2)


def test_norm_and_difference() -> None:
    a = {"x": np.array([3.0, 0.0]), "y": np.array([[4.0]])}
    assert global_norm(a) == pytest.approx(5.0)
    assert global_norm(difference(a, a)) == 0.0


def test_update_norms_and_screening_leave_batch_norm_step_counters_out() -> None:
    """A weight update of norm 0.28 and 60 local steps is an update of norm 0.28, not 60."""
    sent = {"w": np.zeros(2, dtype=np.float32), "bn.num_batches_tracked": np.array(0, dtype=np.int64)}
    reply = {"w": np.array([0.28, 0.0], dtype=np.float32), "bn.num_batches_tracked": np.array(60, dtype=np.int64)}
    assert global_norm(difference(reply, sent)) == pytest.approx(0.28)
    assert weights_problem(reply, sent, max_norm=1.0) is None
    assert weights_problem(reply, sent, max_norm=0.1) is not None


def test_server_optimizer_plain_step_is_the_average_and_momentum_accumulates() -> None:
    weights = {"w": np.array([1.0, 2.0])}
    average = {"w": np.array([0.5, 1.0])}
    plain = ServerOptimizer(1.0, 0.0)
    np.testing.assert_allclose(plain.step(weights, difference(weights, average))["w"], average["w"])
    heavy = ServerOptimizer(0.5, 0.9)
    gradient = {"w": np.array([1.0, 1.0])}
    first = heavy.step(weights, gradient)
    second = heavy.step(first, gradient)
    np.testing.assert_allclose(first["w"], weights["w"] - 0.5)
    np.testing.assert_allclose(second["w"], first["w"] - 0.5 * 1.9)


def _round(monkeypatch: pytest.MonkeyPatch, examples: list[int]) -> tuple[ArrayRecord, list[Message]]:
    global_arrays = to_record(random_model())
    replies = []
    for node_id, count in enumerate(examples, start=1):
        request = Message(
            RecordDict({ARRAYS: global_arrays, CONFIG: ConfigRecord()}),
            dst_node_id=node_id,
            message_type=MessageType.TRAIN,
        )
        metrics = MetricRecord({NUM_EXAMPLES: count, TRAIN_LOSS: float(node_id)})
        content = RecordDict({ARRAYS: to_record(random_model()), METRICS: metrics})
        replies.append(reply_from(node_id, request, content, monkeypatch))
    return global_arrays, replies


def test_our_fedavg_equals_flowers_fedavg_on_the_same_replies(
    message_identity: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    global_arrays, replies = _round(monkeypatch, [120, 300, 45, 7])
    ours = FedAvg()
    ours.global_arrays = to_numpy(global_arrays)
    our_arrays, our_metrics = ours.aggregate_train(1, replies)
    flower_arrays, flower_metrics = FlowerFedAvg().aggregate_train(1, replies)
    for key, value in to_numpy(flower_arrays).items():
        np.testing.assert_allclose(to_numpy(our_arrays)[key], value, atol=1e-6)
    assert our_metrics[TRAIN_LOSS] == pytest.approx(flower_metrics[TRAIN_LOSS])


def test_uniform_weighting_ignores_example_counts(message_identity: None, monkeypatch: pytest.MonkeyPatch) -> None:
    global_arrays, replies = _round(monkeypatch, [1, 1000])
    strategy = FedAvg(weighting="uniform")
    strategy.global_arrays = to_numpy(global_arrays)
    arrays, _ = strategy.aggregate_train(1, replies)
    models = [to_numpy(r.content[ARRAYS]) for r in replies]
    np.testing.assert_allclose(to_numpy(arrays)["w"], (models[0]["w"] + models[1]["w"]) / 2, atol=1e-6)


def _reference_average(models: list[dict[str, np.ndarray]], weights: list[float]) -> dict[str, np.ndarray]:
    """The average as fedapp computed it before it streamed: all models held, key by key, float64 sums."""
    total = float(sum(weights))
    averaged = {}
    for key, first in models[0].items():
        acc = np.zeros(first.shape, dtype=np.float64)
        for model, weight in zip(models, weights, strict=True):
            acc += model[key].astype(np.float64) * (weight / total)
        averaged[key] = acc.astype(first.dtype)
    return averaged


def test_the_streamed_average_is_bit_for_bit_the_held_one() -> None:
    for count in (1, 2, 7, 31):
        models = [
            {
                "w": (RNG.normal(size=(20, 9)) * 10.0 ** RNG.integers(-6, 6)).astype(np.float32),
                "b": RNG.normal(size=4).astype(np.float64),
                "s": np.array(-0.0, dtype=np.float32),
            }
            for _ in range(count)
        ]
        weights = [float(RNG.integers(1, 600)) for _ in range(count)]
        streamed = weighted_average(iter(models), weights)
        for key, expected in _reference_average(models, weights).items():
            assert streamed[key].dtype == expected.dtype and streamed[key].tobytes() == expected.tobytes()
    with pytest.raises(ValueError, match="at least one"):
        weighted_average(iter([]), [])
