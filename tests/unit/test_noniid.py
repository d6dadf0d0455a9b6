"""Exact math of the non-IID strategies: SCAFFOLD, FedNova, FedBN, Ditto, and the node state they keep.

Pure functions are checked on hand-computed cases; the strategies are checked against
FedAvg where their papers say they reduce to it, with their messages answered by the
real ClientApp in-process (no Ray).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from fedapp.config import ConfigError, RunConfig
from fedapp.data import DataSpec, load_node_data
from fedapp.federation import personalized_accuracy, reply_problem
from fedapp.models import batch_norm_keys, build_model, parameter_keys
from fedapp.node_state import STATE_DIR_VARIABLE, NodeStateStore
from fedapp.protocol import PERSONAL_STATE
from fedapp.training import train_scaffold, train_sgd
from sim.overrides import app_defaults
from strategies.aggregation import fednova_scales, normalized_steps
from strategies.arrays import to_numpy, to_record
from strategies.client_state import ClientStateLedger
from strategies.control_variates import server_control_update, updated_client_control
from strategies.ditto import Ditto
from strategies.fedavg import FedAvg
from strategies.fedbn import FedBN
from strategies.fednova import FedNova
from strategies.personalization import accuracy_spread, ditto_personal_step
from strategies.protocol import (
    ARRAYS,
    CONFIG,
    CONTROL_VARIATE,
    EVAL_ACCURACY,
    EVALUATE_PERSONAL,
    LOCAL_STEPS,
    METRICS,
    NUM_EXAMPLES,
    PERSONAL_ACCURACY,
    SERVER_ROUND,
    STATE_ROUND,
    STATE_SCOPE,
    TRAIN_SCAFFOLD,
)
from strategies.scaffold import Scaffold
from strategies.seeding import torch_generator
from strategies.validation import NON_FINITE, SHAPE, UNEXPECTED
from tests.helpers import APP_DIR, NUM_NODES, FakeGrid, answer, play_round, reply_from

SAMPLING = {"min_train_nodes": 1, "min_evaluate_nodes": 1, "min_available_nodes": 1}
SCOPE = "0123456789abcdef0123456789abcdef"
PARTITIONS = 10  # the pool in 10 shares: each node trains on a tenth, which keeps these tests fast
FEDBN_PARTITIONS = 4


@pytest.fixture(autouse=True)
def node_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, message_identity: None) -> Path:
    """Nodes of these tests keep their state under the test's own folder (and messages can be built)."""
    folder = tmp_path / "node-state"
    monkeypatch.setenv(STATE_DIR_VARIABLE, str(folder))
    return folder


def run_config(**changes: Any) -> dict[str, Any]:
    """The 2NN with batches of 32 (a third of the default's steps: equalities hold at any batch size)."""
    defaults = {**app_defaults(APP_DIR), "model": "2nn", "batch-size": 32}
    return {**defaults, **{k.replace("_", "-"): v for k, v in changes.items()}}


def initial(model: str = "2nn") -> ArrayRecord:
    return ArrayRecord(build_model(model, (1, 28, 28), 10, seed=0).state_dict())


def assert_same_arrays(first: ArrayRecord, second: ArrayRecord) -> None:
    one, two = to_numpy(first), to_numpy(second)
    assert one.keys() == two.keys()
    for key, value in one.items():
        assert np.array_equal(value, two[key]), key


# --- SCAFFOLD ------------------------------------------------------------------


def test_control_variate_update_and_server_update_on_a_hand_computed_case() -> None:
    def tensors(value: float) -> dict[str, torch.Tensor]:
        return {"w": torch.tensor([value])}

    # c_i = 1, c = 0.5, x = 2, y = 1, K = 4, lr = 0.25: c_i+ = 1 - 0.5 + (2 - 1) / (4 * 0.25) = 1.5
    updated = updated_client_control(tensors(1.0), tensors(0.5), tensors(2.0), tensors(1.0), 4, 0.25)
    assert updated["w"].item() == 1.5
    assert updated_client_control(tensors(1.0), tensors(0.5), tensors(2.0), tensors(1.0), 0, 0.25)["w"].item() == 1.0
    # c = 0.5 + (1/N) (0.5 + 1.5) with N = 4 (two of four clients replied)
    server = server_control_update(
        {"w": np.array([0.5], dtype=np.float32)},
        [{"w": np.array([0.5], dtype=np.float32)}, {"w": np.array([1.5], dtype=np.float32)}],
        population=4,
    )
    assert server["w"].dtype == np.float32 and server["w"][0] == 1.0


def test_corrected_step_is_the_papers_step_and_c_i_follows_option_ii() -> None:
    """One plain-SGD step: y = x - lr (g - c_i + c); c_i+ = c_i - c + (x - y) / (K lr)."""
    model = build_model("logreg", (1, 28, 28), 10, seed=0)
    node = load_node_data(DataSpec.from_config(RunConfig.from_mapping(run_config(model="logreg"))), 0, 10)
    data = type(node.train)(node.train.features[:8], node.train.labels[:8])
    start = {k: v.detach().clone() for k, v in model.named_parameters()}
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(data.features), data.labels).backward()
    gradient = {k: p.grad.detach().clone() for k, p in model.named_parameters()}
    generator = torch.Generator().manual_seed(0)
    server = {k: torch.randn(v.shape, generator=generator) for k, v in start.items()}
    client = {k: torch.randn(v.shape, generator=generator) for k, v in start.items()}
    lr = 0.1
    result, updated = train_scaffold(
        model,
        data,
        server_control=server,
        client_control=client,
        learning_rate=lr,
        epochs=1,
        batch_size=8,
        generator=torch_generator(0),
    )
    assert result.steps == 1
    for key, parameter in model.named_parameters():
        expected = start[key] - lr * (gradient[key] - client[key] + server[key])
        torch.testing.assert_close(parameter.detach(), expected, atol=1e-6, rtol=0)
        torch.testing.assert_close(
            updated[key], client[key] - server[key] + (start[key] - parameter.detach()) / lr, atol=1e-4, rtol=0
        )


def test_scaffold_with_zero_control_variates_equals_fedavg(monkeypatch: pytest.MonkeyPatch) -> None:
    """Round 1 starts with c = c_i = 0: the corrected step is the plain one, and so is the model."""
    config = run_config()
    _, fedavg = play_round(FedAvg(**SAMPLING), config, monkeypatch, initial(), partitions=PARTITIONS)
    control_keys = parameter_keys(build_model("2nn", (1, 28, 28), 10, seed=0))
    scaffold = Scaffold(control_keys=control_keys, **SAMPLING)
    messages, arrays = play_round(scaffold, config, monkeypatch, initial(), partitions=PARTITIONS)
    assert_same_arrays(arrays, fedavg)
    first = messages[0]
    assert first.metadata.message_type == TRAIN_SCAFFOLD
    assert set(first.content.array_records) == {ARRAYS, CONTROL_VARIATE}
    assert first.content[CONFIG][STATE_SCOPE] == scaffold.ledger.scope and first.content[CONFIG][STATE_ROUND] == 0
    assert all(not value.any() for value in to_numpy(first.content[CONTROL_VARIATE]).values())
    assert scaffold.control.keys() == set(control_keys) and scaffold.round_metrics()["control_variate_norm"] > 0
    assert scaffold.ledger.committed == {f"node-{n}": 1 for n in range(1, NUM_NODES + 1)}


def test_scaffold_clients_continue_from_their_committed_control_variate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Round 2's Delta c_i is c_i+(2) - c_i+(1): the node loaded round 1's c_i, saved round 2's, kept both."""
    config = run_config()
    scaffold = Scaffold(control_keys=parameter_keys(build_model("2nn", (1, 28, 28), 10, seed=0)), **SAMPLING)
    arrays = initial()
    deltas: list[dict[str, np.ndarray]] = []
    for server_round in (1, 2):
        grid = FakeGrid([1])
        train_config = ConfigRecord({SERVER_ROUND: server_round, "lr": 0.05, "local-epochs": 1})
        messages = list(scaffold.configure_train(server_round, arrays, train_config, grid))
        (reply,) = answer(messages, config, monkeypatch, PARTITIONS)
        deltas.append(to_numpy(reply.content[CONTROL_VARIATE]))
        arrays, _ = scaffold.aggregate_train(server_round, [reply])
    store = NodeStateStore.for_message(
        ConfigRecord({STATE_SCOPE: scaffold.ledger.scope, STATE_ROUND: 1}), "partition-00000"
    )
    saved = {path.name for path in store.folder.iterdir()}
    assert saved == {f"{CONTROL_VARIATE}-1.pt", f"{CONTROL_VARIATE}-2.pt"}
    first = store.load(CONTROL_VARIATE)
    second = NodeStateStore(store.folder, 2).load(CONTROL_VARIATE)
    for key, value in deltas[1].items():
        np.testing.assert_allclose(value, (second[key] - first[key]).numpy(), atol=1e-6)  # type: ignore[index]
        np.testing.assert_allclose(deltas[0][key], first[key].numpy(), atol=1e-6)  # type: ignore[index]
    # c = (1/N) sum_i c_i with one of one clients: c equals the client's c_i
    for key, value in scaffold.control.items():
        np.testing.assert_allclose(value, second[key].numpy(), atol=1e-6)  # type: ignore[index]


# --- FedNova -------------------------------------------------------------------


def test_normalized_steps_is_the_momentum_sgd_displacement() -> None:
    """With a constant gradient g, tau momentum-SGD steps move the weights by exactly lr * a(tau, rho) * g."""
    gradient, lr = torch.tensor([0.3, -2.0]), 0.1
    for momentum, steps in ((0.0, 5), (0.9, 7), (0.5, 2)):
        weights = torch.zeros(2, requires_grad=True)
        optimizer = torch.optim.SGD([weights], lr=lr, momentum=momentum)
        for _ in range(steps):
            optimizer.zero_grad()
            (weights * gradient).sum().backward()
            optimizer.step()
        expected = -lr * normalized_steps(steps, momentum) * gradient
        torch.testing.assert_close(weights.detach(), expected, atol=1e-6, rtol=1e-6)
    assert normalized_steps(2, 0.5) == 2.5  # 1 + 1.5, by hand


def test_fednova_scales_on_a_hand_computed_case_and_equal_steps_give_fedavg() -> None:
    # n = (1, 3), tau = (2, 6): p = (0.25, 0.75), tau_eff = 0.5 + 4.5 = 5, factors 5/2 and 5/6
    assert fednova_scales([2.0, 6.0], [1.0, 3.0]) == pytest.approx([2.5, 5 / 6])
    assert fednova_scales([4.0, 4.0, 4.0], [1.0, 7.0, 2.0]) == [1.0, 1.0, 1.0]
    assert fednova_scales([0.0, 3.0], [1.0, 1.0]) == [0.0, 0.5]


def _replies(
    messages: list[Message],
    updates: list[float],
    steps: list[int],
    examples: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> list[Message]:
    """Replies whose weights are the sent ones plus `updates`, with the given steps and examples."""
    replies = []
    for message, update, step, count in zip(messages, updates, steps, examples, strict=True):
        weights = {k: v + np.float32(update) for k, v in to_numpy(message.content[ARRAYS]).items()}
        metrics = MetricRecord({NUM_EXAMPLES: count, LOCAL_STEPS: step, "train-loss": 0.0})
        content = RecordDict({ARRAYS: to_record(weights), METRICS: metrics})
        replies.append(reply_from(message.metadata.dst_node_id, message, content, monkeypatch))
    return replies


@pytest.mark.parametrize(("steps", "expected"), [((6, 6), 0.25 * 2 + 0.75 * 3), ((2, 6), 5 * (0.25 * 1 + 0.75 * 0.5))])
def test_fednova_aggregates_normalised_updates_and_equal_steps_are_fedavg(
    monkeypatch: pytest.MonkeyPatch, steps: tuple[int, int], expected: float
) -> None:
    """Updates 2 and 3 from n = (1, 3) examples: FedAvg 2.75; with tau = (2, 6), FedNova 3.125."""
    arrays = to_record({"w": np.zeros(3, dtype=np.float32)})
    config = ConfigRecord({SERVER_ROUND: 1, "lr": 0.1, "local-epochs": 1})
    results = {}
    for strategy in (FedAvg(**SAMPLING), FedNova(**SAMPLING)):
        messages = list(strategy.configure_train(1, arrays, config, FakeGrid([1, 2])))
        replies = _replies(messages, [2.0, 3.0], list(steps), [1, 3], monkeypatch)
        results[type(strategy).__name__] = to_numpy(strategy.aggregate_train(1, replies)[0])["w"]  # type: ignore[arg-type]
    np.testing.assert_allclose(results["FedNova"], expected, rtol=1e-6)
    if steps[0] == steps[1]:
        assert np.array_equal(results["FedNova"], results["FedAvg"])


def test_fednova_keeps_stragglers_partial_work(monkeypatch: pytest.MonkeyPatch) -> None:
    config = run_config(local_epochs=3, straggler_fraction=0.67)
    strategy = FedNova(straggler_fraction=0.67, seed=3, **SAMPLING)
    messages, _ = play_round(strategy, config, monkeypatch, initial())
    assert len(strategy.stragglers) == 2
    assert strategy.round_metrics()["stragglers_dropped"] == 0.0
    assert strategy.round_metrics()["tau_eff"] > 0
    assert messages[0].metadata.message_type == "train"


# --- Ditto ---------------------------------------------------------------------


def test_ditto_personal_step_limits_and_first_order_agreement() -> None:
    v, g, w = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 4.0]), torch.tensor([3.0, 0.0])
    assert torch.equal(ditto_personal_step(v, g, w, 0.1, float("inf")), w)
    assert torch.equal(ditto_personal_step(v, g, w, 0.1, 0.0), v - 0.1 * g)
    explicit = v - 1e-3 * (g + 1.0 * (v - w))
    torch.testing.assert_close(ditto_personal_step(v, g, w, 1e-3, 1.0), explicit, atol=1e-5, rtol=0)


def _one_node_round(strategy: FedAvg, config: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Message:
    """Round 1 of `strategy` on node 1 alone; returns its reply (the strategy has aggregated it)."""
    train_config = ConfigRecord({SERVER_ROUND: 1, "lr": 0.05, "local-epochs": 1})
    messages = list(strategy.configure_train(1, initial(), train_config, FakeGrid([1])))
    (reply,) = answer(messages, config, monkeypatch, PARTITIONS)
    strategy.aggregate_train(1, [reply])
    return reply


@pytest.mark.parametrize("lam", [0.0, float("inf")])
def test_ditto_personal_models_at_lambda_zero_and_infinity(monkeypatch: pytest.MonkeyPatch, lam: float) -> None:
    """lambda = 0: the personal model trains as the local copy; lambda -> infinity: it is the global model, exactly.

    The global copy trains as FedAvg's client does. (At lambda = 0 the personal step
    computes v - lr g where torch's SGD fuses the multiply-add: equal up to rounding.)
    """
    config = run_config()
    ditto = Ditto(ditto_lambda=lam, **SAMPLING)
    reply = _one_node_round(ditto, config, monkeypatch)
    personal = NodeStateStore.for_message(
        ConfigRecord({STATE_SCOPE: ditto.ledger.scope, STATE_ROUND: 1}), "partition-00000"
    ).load(PERSONAL_STATE)
    assert personal is not None and ditto.ledger.committed == {"node-1": 1}
    expected = to_numpy(reply.content[ARRAYS]) if lam == 0 else to_numpy(initial())
    for key, value in expected.items():
        np.testing.assert_allclose(personal[key].numpy(), value, atol=1e-6 if lam == 0 else 0, rtol=0, err_msg=key)
    assert_same_arrays(reply.content[ARRAYS], _one_node_round(FedAvg(**SAMPLING), config, monkeypatch).content[ARRAYS])


# --- FedBN and personal evaluation ---------------------------------------------


def test_fedbn_clients_keep_their_own_batch_norm_layers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Round 2 trains the received shared layers with the node's round-1 BatchNorm, whatever the server sent.

    The pool in 4 shares: enough steps (25 a round) for the node's own model to beat one with garbled BatchNorm.
    """
    config = run_config(model="cnn-small-bn", batch_size=32)
    strategy = FedBN(**SAMPLING)
    cnn = initial("cnn-small-bn")
    _, fedavg = play_round(FedAvg(**SAMPLING), config, monkeypatch, cnn, num_nodes=2, partitions=FEDBN_PARTITIONS)
    messages, arrays = play_round(strategy, config, monkeypatch, cnn, num_nodes=2, partitions=FEDBN_PARTITIONS)
    assert_same_arrays(arrays, fedavg)
    model = build_model("cnn-small-bn", (1, 28, 28), 10, seed=0)
    bn_keys = batch_norm_keys(model)
    store = NodeStateStore.for_message(
        ConfigRecord({STATE_SCOPE: strategy.ledger.scope, STATE_ROUND: 1}), "partition-00001"
    )
    own = store.load(PERSONAL_STATE)
    assert sorted(own) == sorted(bn_keys)  # type: ignore[arg-type]
    garbled = {k: (v if k not in bn_keys else np.full_like(v, 7)) for k, v in to_numpy(arrays).items()}
    train_config = ConfigRecord({SERVER_ROUND: 2, "lr": 0.05, "local-epochs": 1})
    messages = list(strategy.configure_train(2, to_record(garbled), train_config, FakeGrid([2])))
    (reply,) = answer(messages, config, monkeypatch, FEDBN_PARTITIONS)
    model.load_state_dict({**{k: torch.tensor(v) for k, v in garbled.items()}, **own})  # type: ignore[dict-item]
    node = load_node_data(DataSpec.from_config(RunConfig.from_mapping(config)), 1, FEDBN_PARTITIONS)
    train_sgd(
        model,
        node.train,
        epochs=1,
        batch_size=32,
        learning_rate=0.05,
        generator=torch_generator(0, "train", 2, "partition-00001"),
    )
    for key, value in model.state_dict().items():
        np.testing.assert_allclose(to_numpy(reply.content[ARRAYS])[key], value.numpy(), atol=1e-6, err_msg=key)
    evaluation = list(
        strategy.configure_evaluate(2, to_record(garbled), ConfigRecord({SERVER_ROUND: 2}), FakeGrid([2]))
    )
    assert evaluation[0].metadata.message_type == EVALUATE_PERSONAL
    (evaluated,) = answer(evaluation, config, monkeypatch, FEDBN_PARTITIONS)
    metrics = evaluated.content[METRICS]
    assert metrics[PERSONAL_ACCURACY] > metrics[EVAL_ACCURACY]


def test_batch_norm_counters_keep_their_zero_dimensional_shape_through_aggregation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The global model's `num_batches_tracked` stays shape (), so round 2's replies match what was sent."""
    arrays = initial("cnn-small-bn")
    config = ConfigRecord({SERVER_ROUND: 1, "lr": 0.1, "local-epochs": 1})
    strategy = FedAvg(**SAMPLING)
    messages = list(strategy.configure_train(1, arrays, config, FakeGrid([1, 2])))
    aggregated, _ = strategy.aggregate_train(1, _replies(messages, [1.0, 1.0], [1, 1], [1, 1], monkeypatch))
    assert to_numpy(aggregated)["features.1.num_batches_tracked"].shape == ()  # type: ignore[arg-type]


def test_fedbn_refuses_a_model_without_batch_norm() -> None:
    with pytest.raises(ConfigError, match="'model' = '2nn' is not allowed; allowed: cnn-bn or cnn-small-bn"):
        RunConfig.from_mapping(run_config(strategy="fedbn"))
    assert RunConfig.from_mapping(run_config(strategy="fedbn", model="cnn-bn")).model == "cnn-bn"


def test_personalized_accuracy_spread_prefers_personal_models(monkeypatch: pytest.MonkeyPatch) -> None:
    request = Message(RecordDict({CONFIG: ConfigRecord()}), dst_node_id=1, message_type="evaluate")
    replies = [
        reply_from(
            1, request, RecordDict({METRICS: MetricRecord({EVAL_ACCURACY: 0.5, PERSONAL_ACCURACY: 0.9})}), monkeypatch
        ),
        reply_from(
            2, request, RecordDict({METRICS: MetricRecord({EVAL_ACCURACY: 0.6, PERSONAL_ACCURACY: 0.7})}), monkeypatch
        ),
    ]
    assert personalized_accuracy(replies) == pytest.approx(
        {"personalized_accuracy_mean": 0.8, "personalized_accuracy_min": 0.7, "personalized_accuracy_max": 0.9}
    )
    plain = [reply_from(1, request, RecordDict({METRICS: MetricRecord({EVAL_ACCURACY: 0.5})}), monkeypatch)]
    assert personalized_accuracy(plain)["personalized_accuracy_max"] == 0.5
    assert personalized_accuracy([]) == {}
    assert accuracy_spread([0.2, 0.4]) == pytest.approx({"mean": 0.3, "min": 0.2, "max": 0.4})


# --- Node state ----------------------------------------------------------------


def test_node_state_store_loads_the_round_it_is_told_and_keeps_two_files(node_state_dir: Path) -> None:
    def store(resume_round: int) -> NodeStateStore:
        return NodeStateStore.for_message(ConfigRecord({STATE_SCOPE: SCOPE, STATE_ROUND: resume_round}), "node a/b")

    assert store(0).load("x") is None
    store(0).save("x", 1, {"w": torch.ones(2)})
    store(1).save("x", 2, {"w": torch.full((2,), 2.0)})
    store(1).save("x", 3, {"w": torch.full((2,), 3.0)})  # round 2 was not aggregated: round 3 continues from 1
    assert sorted(p.name for p in store(1).folder.iterdir()) == ["x-1.pt", "x-3.pt"]
    assert torch.equal(store(1).load("x")["w"], torch.ones(2))  # type: ignore[index]
    assert store(2).load("x") is None  # gone: the node starts afresh (and says so)
    assert store(1).folder.parent == node_state_dir / SCOPE
    for bad in ("../../etc", "ABC", ""):
        with pytest.raises(ValueError, match="32 lowercase hex digits"):
            NodeStateStore.for_message(ConfigRecord({STATE_SCOPE: bad, STATE_ROUND: 0}), "n")


def test_ledger_commits_aggregated_nodes_and_survives_a_checkpoint() -> None:
    class Keys:
        def key(self, node_id: int) -> str | None:
            return {7: "partition-00007"}.get(node_id)

    ledger = ClientStateLedger(Keys())
    assert ledger.instructions(7) == {STATE_SCOPE: ledger.scope, STATE_ROUND: 0}
    ledger.commit([7, 8], 3)
    assert ledger.committed == {"partition-00007": 3, "node-8": 3}
    restored = ClientStateLedger(Keys())
    assert restored.scope != ledger.scope
    restored.load_state_dict(ledger.state_dict())
    assert restored.instructions(7) == {STATE_SCOPE: ledger.scope, STATE_ROUND: 3}


# --- Screening replies with two array records ----------------------------------


def test_replies_must_return_every_record_they_were_sent_each_shaped_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    weights = {"w": np.zeros((2, 2), dtype=np.float32)}
    sent = Message(
        RecordDict({ARRAYS: to_record(weights), CONTROL_VARIATE: to_record(weights), CONFIG: ConfigRecord()}),
        dst_node_id=1,
        message_type=TRAIN_SCAFFOLD,
    )

    def problem(**records: dict[str, np.ndarray]) -> str | None:
        content = RecordDict({name: to_record(arrays) for name, arrays in records.items()})
        found = reply_problem(reply_from(1, sent, content, monkeypatch), sent, None, 1.0, {})
        return None if found is None else found.kind

    assert problem(**{ARRAYS: weights, CONTROL_VARIATE: weights}) is None
    assert problem(**{ARRAYS: weights}) == UNEXPECTED
    assert problem(**{ARRAYS: weights, CONTROL_VARIATE: {"w": np.zeros(3, dtype=np.float32)}}) == SHAPE
    assert problem(**{ARRAYS: weights, CONTROL_VARIATE: {"w": np.full((2, 2), np.nan, dtype=np.float32)}}) == NON_FINITE
    assert problem(**{ARRAYS: {"w": np.full((2, 2), 5, dtype=np.float32)}, CONTROL_VARIATE: weights}) == "norm"
