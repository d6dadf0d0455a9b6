"""Exact math of FedSGD, FedProx and stragglers (DP: `test_privacy.py`, distillation: `test_distillation.py`).

The ClientApp handlers are called in-process (no Ray) so these tests run the real
client code and the real strategies on real MNIST partitions in seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import ConfigRecord, Context, Message, RecordDict

from fedapp.client_app import app as client_app
from fedapp.config import RunConfig
from fedapp.data import DataSpec, load_node_data
from fedapp.models import build_model
from fedapp.training import full_batch_gradient
from strategies.aggregation import global_norm
from strategies.arrays import to_numpy
from strategies.fedavg import FedAvg
from strategies.fedprox import FedProx
from strategies.fedsgd import FedSGD
from strategies.losses import proximal_term
from strategies.protocol import (
    ARRAYS,
    CONFIG,
    LEARNING_RATE,
    LOCAL_EPOCHS,
    SERVER_ROUND,
    TRAIN_GRADIENT,
)
from strategies.stragglers import choose_stragglers
from tests.helpers import NUM_NODES, FakeGrid, answer, initial, play_round, run_config

# --- FedSGD --------------------------------------------------------------------


def test_fedsgd_with_one_client_is_one_step_of_full_batch_gradient_descent(
    message_identity: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = run_config(learning_rate=0.3, fraction_evaluate=0.0)
    cfg = RunConfig.from_mapping(config)
    strategy = FedSGD(min_train_nodes=1, min_available_nodes=1)
    request = Message(
        RecordDict({ARRAYS: initial(), CONFIG: ConfigRecord({LEARNING_RATE: 0.3})}),
        dst_node_id=1,
        message_type=TRAIN_GRADIENT,
    )
    strategy.configure_train(
        1, initial(), ConfigRecord({SERVER_ROUND: 1, LEARNING_RATE: 0.3, LOCAL_EPOCHS: 1}), FakeGrid([1])
    )
    node = load_node_data(DataSpec.from_config(cfg), 0, 1)
    (reply,) = [client_app(request, Context(1, 1, {"partition-id": 0, "num-partitions": 1}, RecordDict(), config))]
    fedsgd_arrays, _ = strategy.aggregate_train(1, [reply])

    model = build_model("2nn", (1, 28, 28), 10, seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3)
    torch.nn.functional.cross_entropy(model(node.train.features), node.train.labels).backward()
    optimizer.step()
    for key, value in model.state_dict().items():
        np.testing.assert_allclose(to_numpy(fedsgd_arrays)[key], value.numpy(), atol=1e-6)


def test_fedavg_one_epoch_full_batch_equals_fedsgd(message_identity: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """McMahan et al.'s equivalence: FedAvg with E=1 and B=infinity takes FedSGD's step."""
    config = run_config(learning_rate=0.2, batch_size=100_000, local_epochs=1)
    _, fedavg_arrays = play_round(FedAvg(min_train_nodes=1, min_available_nodes=1), config, monkeypatch, initial())
    _, fedsgd_arrays = play_round(FedSGD(min_train_nodes=1, min_available_nodes=1), config, monkeypatch, initial())
    for key, value in to_numpy(fedavg_arrays).items():
        np.testing.assert_allclose(to_numpy(fedsgd_arrays)[key], value, atol=1e-6)
    assert not np.allclose(to_numpy(fedavg_arrays)["layers.1.weight"], to_numpy(initial())["layers.1.weight"])


def test_fedsgd_client_sends_the_gradient_not_weights(message_identity: None, monkeypatch: pytest.MonkeyPatch) -> None:
    config = run_config()
    messages = list(
        FedSGD(min_train_nodes=1, min_available_nodes=1).configure_train(
            1, initial(), ConfigRecord({SERVER_ROUND: 1, LEARNING_RATE: 0.1, LOCAL_EPOCHS: 1}), FakeGrid([1])
        )
    )
    assert messages[0].metadata.message_type == TRAIN_GRADIENT
    (reply,) = answer(messages, config, monkeypatch)
    model = build_model("2nn", (1, 28, 28), 10, seed=0)
    node = load_node_data(DataSpec.from_config(RunConfig.from_mapping(config)), 0, NUM_NODES)
    expected, _ = full_batch_gradient(model, node.train)
    for key, value in to_numpy(reply.content[ARRAYS]).items():
        np.testing.assert_allclose(value, expected[key].numpy(), atol=1e-6)


# --- FedProx and stragglers ----------------------------------------------------


def test_proximal_term_gradient_is_mu_times_distance() -> None:
    weights = [torch.randn(4, 3, requires_grad=True), torch.randn(3, requires_grad=True)]
    anchors = [torch.randn(4, 3), torch.randn(3)]
    mu = 0.7
    (mu / 2 * proximal_term(weights, anchors)).backward()
    for weight, anchor in zip(weights, anchors, strict=True):
        assert torch.allclose(weight.grad, mu * (weight.detach() - anchor), atol=1e-6)


def test_fedprox_with_mu_zero_gives_exactly_fedavgs_model(
    message_identity: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = run_config(local_epochs=1)
    _, fedavg_arrays = play_round(FedAvg(min_train_nodes=1, min_available_nodes=1), config, monkeypatch, initial())
    messages, fedprox_arrays = play_round(
        FedProx(proximal_mu=0.0, min_train_nodes=1, min_available_nodes=1), config, monkeypatch, initial()
    )
    assert messages[0].content[CONFIG]["proximal-mu"] == 0.0
    for key, value in to_numpy(fedavg_arrays).items():
        assert np.array_equal(to_numpy(fedprox_arrays)[key], value)


def test_fedprox_term_pulls_local_models_toward_the_global_model(
    message_identity: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = run_config(local_epochs=2, learning_rate=0.1)
    start = to_numpy(initial())
    distances = {}
    for mu in (0.0, 1.0):
        messages = list(
            FedProx(proximal_mu=mu, min_train_nodes=1, min_available_nodes=1).configure_train(
                1, initial(), ConfigRecord({SERVER_ROUND: 1, LEARNING_RATE: 0.1, LOCAL_EPOCHS: 2}), FakeGrid([1])
            )
        )
        (reply,) = answer(messages, config, monkeypatch)
        local = to_numpy(reply.content[ARRAYS])
        distances[mu] = global_norm({k: local[k] - start[k] for k in start})
    assert distances[1.0] < 0.9 * distances[0.0]


def test_choose_stragglers_is_seeded_and_cuts_epochs() -> None:
    nodes = list(range(10))
    chosen = choose_stragglers(nodes, 0.5, 5, np.random.default_rng(1))
    assert len(chosen) == 5 and all(1 <= epochs < 5 for epochs in chosen.values())
    assert chosen == choose_stragglers(nodes, 0.5, 5, np.random.default_rng(1))
    assert choose_stragglers(nodes, 0.0, 5, np.random.default_rng(1)) == {}
    assert len(choose_stragglers(nodes, 0.9, 20, np.random.default_rng(0))) == 9


@pytest.mark.parametrize(("strategy_class", "kept"), [(FedAvg, False), (FedProx, True)])
def test_fedavg_drops_stragglers_and_fedprox_keeps_their_partial_work(
    message_identity: None, monkeypatch: pytest.MonkeyPatch, strategy_class: type[FedAvg], kept: bool
) -> None:
    config = run_config(local_epochs=3, straggler_fraction=0.67)
    extra = {"proximal_mu": 0.0} if strategy_class is FedProx else {}
    strategy = strategy_class(straggler_fraction=0.67, seed=3, min_train_nodes=1, min_available_nodes=1, **extra)
    messages, _ = play_round(strategy, config, monkeypatch, initial())
    epochs = {m.metadata.dst_node_id: int(m.content[CONFIG][LOCAL_EPOCHS]) for m in messages}
    assert len(strategy.stragglers) == 2
    assert all(epochs[node] < 3 for node in strategy.stragglers)
    assert [e for node, e in epochs.items() if node not in strategy.stragglers] == [3]
    assert strategy.round_metrics() == {"stragglers": 2.0, "stragglers_dropped": 0.0 if kept else 2.0}
