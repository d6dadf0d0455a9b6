"""The `aggregation` setting inside our averaging strategies: robust rules on real ClientApp replies, and refusals."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ConfigRecord

from fedapp.config import ConfigError, RunConfig
from fedapp.strategy_factory import build_strategy
from strategies.aggregation import difference, global_norm
from strategies.arrays import reply_arrays, to_numpy, to_record
from strategies.protocol import LEARNING_RATE, LOCAL_EPOCHS, SERVER_ROUND
from tests.helpers import FakeGrid, answer, initial, run_config

NODES = 5
pytestmark = pytest.mark.usefixtures("message_identity")


def _moved(monkeypatch: pytest.MonkeyPatch, aggregation: str, **settings: object) -> tuple[float, float]:
    """How far round 1 moves the model with one node sending 50x its update, and with every node honest."""
    raw = run_config(aggregation=aggregation, min_train_nodes=NODES, min_available_nodes=NODES, **settings)
    strategy = build_strategy(RunConfig.from_mapping(raw))
    grid = FakeGrid(list(range(1, NODES + 1)))
    train_config = ConfigRecord({SERVER_ROUND: 1, LEARNING_RATE: float(raw["learning-rate"]), LOCAL_EPOCHS: 1})
    sent = list(strategy.configure_train(1, initial(), train_config, grid))
    replies = answer(sent, raw, monkeypatch, NODES)
    start = to_numpy(initial())
    honest, _ = strategy.aggregate_train(1, replies)
    trained = reply_arrays(replies[0].content)
    replies[0].content["arrays"] = to_record({k: start[k] + 50 * (v - start[k]) for k, v in trained.items()})
    attacked, _ = strategy.aggregate_train(1, replies)
    return (
        global_norm(difference(to_numpy(attacked), start)),  # type: ignore[arg-type]
        global_norm(difference(to_numpy(honest), start)),  # type: ignore[arg-type]
    )


def test_one_large_update_drags_the_mean_but_not_the_robust_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    attacked_mean, honest_mean = _moved(monkeypatch, "mean")
    assert attacked_mean > 5 * honest_mean
    for rule, settings in [
        ("median", {}),
        ("trimmed-mean", {"aggregation_trim_fraction": 0.2}),
        ("krum", {"aggregation_byzantine": 1}),
        ("centered-clipping", {"aggregation_centered_clipping_tau": 1.0}),
    ]:
        attacked, honest = _moved(monkeypatch, rule, **settings)
        assert np.isfinite(attacked) and attacked < 2 * max(honest, honest_mean), rule


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"aggregation": "average"}, "'aggregation' = 'average'; allowed: mean, median"),
        ({"aggregation": "median", "strategy": "scaffold"}, "'strategy' = 'scaffold' is not allowed"),
        ({"aggregation": "median", "dp": "server-fixed"}, "cannot be combined with dp"),
        (
            {"aggregation": "krum", "aggregation_byzantine": 1},
            "'min-train-nodes' = 2 is not allowed; allowed: an integer >= 5",
        ),
        ({"aggregation": "trimmed-mean", "aggregation_trim_fraction": 0.5}, "'aggregation-trim-fraction' = 0.5"),
    ],
)
def test_robust_settings_that_break_a_guarantee_are_refused_in_one_line(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")) as refused:
        RunConfig.from_mapping(run_config(**changes))
    assert "\n" not in str(refused.value)
