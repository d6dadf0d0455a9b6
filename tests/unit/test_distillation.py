"""Federated distillation's math and plumbing: FD, FedMD, FedDF's validated server distillation.

Hand-computed cases for the pure functions in `strategies/`; the real ClientApp
handlers and `ServerDistiller` run in-process on real MNIST partitions (no Ray).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from fedapp.client_app import app as client_app
from fedapp.config import RunConfig
from fedapp.distillation import ServerDistiller
from fedapp.models import build_model
from fedapp.protocol import LOCAL_MODEL
from fedapp.training import LabelLogitSums, fit_logits, predict_logits
from sim.overrides import app_defaults
from strategies.arrays import Arrays, to_numpy, to_record
from strategies.consensus import alignment_subset, consensus_accuracy, consensus_confidence, uniform_consensus
from strategies.distiller import Distillation
from strategies.fd import FD
from strategies.feddf import FedDF
from strategies.fedmd import FedMD
from strategies.label_logits import label_consensus_accuracy, label_means, label_teacher
from strategies.losses import distillation_loss, label_distillation_term, logit_matching_loss, soft_labels
from strategies.protocol import (
    ARRAYS,
    CONSENSUS,
    HAS_TEACHER,
    LABEL_LOGITS,
    LABEL_PRESENCE,
    LEARNING_RATE,
    LOCAL_EPOCHS,
    METRICS,
    NUM_EXAMPLES,
    PUBLIC_LOGITS,
    SERVER_ROUND,
    TEACHER,
    TRAIN_DISTILL,
    TRAIN_LABEL_LOGITS,
)
from strategies.seeding import torch_generator
from strategies.validation_choice import START, ValidationChoice
from tests.helpers import APP_DIR, FakeGrid, reply_from, write_parquet_dataset

NUM_NODES = 3
NODE_IDS = [1, 2, 3]


def run_config(**changes: Any) -> dict[str, Any]:
    """The app's defaults on the 2NN with small budgets, as Flower's flat run config."""
    small = {"model": "2nn", "distill_steps": 40, "distill_eval_every": 10, "transfer_epochs": 1}
    return {**app_defaults(APP_DIR), **{k.replace("_", "-"): v for k, v in {**small, **changes}.items()}}


# --- FD: per-label logits --------------------------------------------------------


def test_label_means_average_each_labels_logits_and_leave_unseen_labels_zero() -> None:
    sums = np.array([[2.0, 4.0], [0.0, 0.0], [9.0, -3.0]])
    counts = np.array([2, 0, 3])
    np.testing.assert_allclose(label_means(sums, counts), [[1.0, 2.0], [0.0, 0.0], [3.0, -1.0]])


def test_label_logit_sums_accumulate_per_label() -> None:
    sums = LabelLogitSums(3)
    sums.observe(torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]), torch.tensor([0, 1]))
    sums.observe(torch.tensor([[3.0, 1.0, 1.0]]), torch.tensor([0]))
    totals, counts = sums.numpy()
    np.testing.assert_allclose(totals, [[4.0, 1.0, 1.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(counts, [2, 1, 0])
    np.testing.assert_allclose(label_means(totals, counts)[0], [2.0, 0.5, 0.5])


def test_leave_own_out_teacher_on_a_hand_computed_case() -> None:
    """Three devices, three labels, two classes: device 0 holds labels 0, 1; device 1 labels 0, 2; device 2 all."""
    means = [
        np.array([[1.0, 0.0], [2.0, 2.0], [0.0, 0.0]]),
        np.array([[3.0, 1.0], [0.0, 0.0], [5.0, 1.0]]),
        np.array([[5.0, 2.0], [4.0, 0.0], [1.0, 3.0]]),
    ]
    counts = [np.array([4, 1, 0]), np.array([2, 0, 7]), np.array([1, 1, 1])]
    teacher, has = label_teacher(means, counts, own=0)
    # label 0: devices 1 and 2 -> ((3, 1) + (5, 2)) / 2; label 1: device 2 only; label 2: devices 1 and 2
    np.testing.assert_allclose(teacher, [[4.0, 1.5], [4.0, 0.0], [3.0, 2.0]])
    assert has.tolist() == [True, True, True]
    teacher, has = label_teacher(means, counts, own=2)
    # label 1 is then held by device 0 only; label 2 by device 1 only
    np.testing.assert_allclose(teacher, [[2.0, 0.5], [2.0, 2.0], [5.0, 1.0]])
    teacher, has = label_teacher(means[:2], counts[:2], own=1)
    # without device 2, label 2 is held only by device 1 itself: no teacher
    np.testing.assert_allclose(teacher, [[1.0, 0.0], [2.0, 2.0], [0.0, 0.0]])
    assert has.tolist() == [True, True, False]
    everyone, _ = label_teacher(means, counts, own=None)
    np.testing.assert_allclose(everyone[0], [3.0, 1.0])
    # the paper's formula when every device holds every label: (sum - own) / (M - 1)
    full = [m + 1 for m in means]
    teacher, _ = label_teacher(full, [np.ones(3)] * 3, own=1)
    np.testing.assert_allclose(teacher, (sum(full) - full[1]) / 2)


def test_label_consensus_accuracy_counts_labels_whose_average_peaks_at_them() -> None:
    means = [np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])]
    # label 0 peaks at 0, label 1 at 1; label 2 is held by nobody
    assert label_consensus_accuracy(means, [np.array([1, 1, 0])]) == 1.0
    means = [np.array([[0.0, 2.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])]
    assert label_consensus_accuracy(means, [np.array([1, 1, 0])]) == 0.5
    assert label_consensus_accuracy(means, [np.zeros(3)]) is None


def test_fd_regulariser_is_the_cross_entropy_to_the_labels_teacher_and_zero_without_one() -> None:
    logits = torch.tensor([[1.0, 2.0], [0.5, -1.0]])
    labels = torch.tensor([1, 0])
    teacher = torch.tensor([[0.0, 0.0], [3.0, 1.0]])
    has = torch.tensor([False, True])
    expected = -(soft_labels(teacher[1], 1.0) * torch.log_softmax(logits[0], dim=0)).sum() / 2
    assert label_distillation_term(logits, labels, teacher, has, 1.0).item() == pytest.approx(expected.item())
    assert label_distillation_term(logits, labels, teacher, torch.tensor([False, False]), 1.0).item() == 0.0


# --- FedMD: consensus ------------------------------------------------------------


def test_uniform_consensus_ignores_sample_counts_and_scores_against_hidden_labels() -> None:
    a, b = np.array([[2.0, 0.0], [0.0, 4.0]]), np.array([[0.0, 2.0], [0.0, 0.0]])
    consensus = uniform_consensus([a, b])
    np.testing.assert_allclose(consensus, [[1.0, 1.0], [0.0, 2.0]])
    assert consensus_accuracy(np.array([[2.0, 1.0], [0.0, 2.0]]), np.array([0, 0])) == 0.5
    assert consensus_confidence(np.array([[0.0, 0.0]])) == pytest.approx(0.5)


def test_alignment_subset_is_all_by_default_or_a_fresh_seeded_draw_per_round() -> None:
    np.testing.assert_array_equal(alignment_subset(5, 0, seed=0, server_round=1), np.arange(5))
    first = alignment_subset(500, 100, seed=0, server_round=1)
    assert len(first) == 100 and np.all(np.diff(first) > 0)
    np.testing.assert_array_equal(first, alignment_subset(500, 100, seed=0, server_round=1))
    assert not np.array_equal(first, alignment_subset(500, 100, seed=0, server_round=2))


def test_digest_fits_logits_with_the_mean_absolute_error() -> None:
    assert logit_matching_loss(torch.tensor([[1.0, -1.0]]), torch.tensor([[0.0, 1.0]])).item() == pytest.approx(1.5)
    model = build_model("2nn", (1, 28, 28), 10, seed=0)
    features, targets = torch.randn(200, 1, 28, 28), torch.randn(200, 10) * 3
    before = logit_matching_loss(predict_logits(model, features), targets).item()
    fit_logits(model, features, targets, epochs=10, batch_size=32, learning_rate=1e-3, generator=torch_generator(0))
    assert logit_matching_loss(predict_logits(model, features), targets).item() < 0.7 * before


# --- FedDF: validation, best checkpoint, fallback ----------------------------------


def test_validation_choice_keeps_the_start_with_fallback_and_the_best_distilled_without() -> None:
    with_fallback = ValidationChoice(patience=20, fallback=True)
    assert with_fallback.offer(START, 0.8)
    assert not with_fallback.offer(10, 0.7)
    assert not with_fallback.offer(20, 0.8)  # not a strict improvement
    assert with_fallback.exhausted(20) and with_fallback.fell_back
    without = ValidationChoice(patience=20, fallback=False)
    assert not without.offer(START, 0.8)
    assert without.offer(10, 0.7) and not without.offer(20, 0.6)
    assert without.best_step == 10 and not without.fell_back and without.start_accuracy == 0.8
    assert not without.exhausted(29) and without.exhausted(30)


def trained_student(config: RunConfig) -> Arrays:
    """A 2NN trained for an epoch on each half of the pool: a decent averaged model."""
    from fedapp.data import DataSpec, load_node_data  # noqa: PLC0415
    from fedapp.training import train_sgd  # noqa: PLC0415

    model = build_model("2nn", (1, 28, 28), 10, seed=0)
    for node in (0, 1):
        data = load_node_data(DataSpec.from_config(config), node, 2).train
        train_sgd(model, data, epochs=1, batch_size=10, learning_rate=0.05, generator=torch_generator(node))
    return {key: value.detach().numpy().copy() for key, value in model.state_dict().items()}


def always_class(arrays: Arrays, label: int) -> Arrays:
    """`arrays` with the last layer's bias pushed so far toward `label` that the model always predicts it."""
    wrong = {key: value.copy() for key, value in arrays.items()}
    wrong["layers.5.bias"][label] += 100.0
    return wrong


def test_feddf_fallback_keeps_the_average_when_distillation_makes_validation_worse() -> None:
    config = RunConfig.from_mapping(run_config(strategy="feddf"))
    distiller = ServerDistiller(config)
    student = trained_student(config)
    bad_teachers = [always_class(student, 3), always_class(student, 3)]
    kept = distiller.distil_ensemble(student, bad_teachers, server_round=1)
    assert kept.metrics["distill_fell_back"] == 1.0
    assert kept.metrics["distill_validation_start"] > 0.6
    assert kept.metrics["distill_validation_best"] == kept.metrics["distill_validation_start"]
    assert kept.metrics["consensus_accuracy"] < 0.2
    for key, value in student.items():
        np.testing.assert_array_equal(kept.arrays[key], value)
    without = ServerDistiller(RunConfig.from_mapping(run_config(strategy="feddf", distill_fallback=False)))
    distilled = without.distil_ensemble(student, bad_teachers, server_round=1)
    assert distilled.metrics["distill_fell_back"] == 0.0
    assert distilled.metrics["distill_validation_best"] < distilled.metrics["distill_validation_start"]
    assert not np.array_equal(distilled.arrays["layers.5.bias"], student["layers.5.bias"])


def test_feddf_keeps_the_best_validated_step_when_distillation_helps() -> None:
    config = RunConfig.from_mapping(run_config(strategy="feddf", distill_steps=60, distill_patience=20))
    distiller = ServerDistiller(config)
    good = trained_student(config)
    fresh = {k: v.detach().numpy().copy() for k, v in build_model("2nn", (1, 28, 28), 10, seed=1).state_dict().items()}
    result = distiller.distil_ensemble(fresh, [good, good], server_round=1)
    assert result.metrics["distill_fell_back"] == 0.0
    assert result.metrics["distill_best_step"] > 0
    assert result.metrics["distill_validation_best"] > result.metrics["distill_validation_start"] + 0.3
    assert result.metrics["distill_steps"] <= 60


def test_feddf_distils_on_another_dataset_when_asked(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """`distill-dataset`: the unlabelled data comes from another dataset (here inverted digits), not the pool."""
    from fedapp.data.embedded import load_mnist  # noqa: PLC0415

    monkeypatch.setenv("FEDAPP_CACHE_DIR", str(tmp_path / "cache"))
    images, labels = load_mnist()
    splits = {"train": range(300), "test": range(300, 350)}
    folder = write_parquet_dataset(tmp_path / "inverted-digits", 255 - images, labels, splits)
    config = RunConfig.from_mapping(run_config(strategy="feddf", distill_dataset=str(folder)))
    distiller = ServerDistiller(config)
    assert distiller.data.shape == (300, 1, 28, 28)
    assert distiller.data.mean() > distiller.public.features.mean() + 1.0
    student = trained_student(config)
    result = distiller.distil_ensemble(student, [student], server_round=1)
    assert "consensus_accuracy" not in result.metrics and result.metrics["distill_steps"] >= 1
    assert "inverted-digits" in distiller.describe()


class ShiftingDistiller:
    """A stand-in `Distiller` whose "distillation" moves the student by a fixed `shift` (and records the students)."""

    def __init__(self, shift: Arrays) -> None:
        self.shift = shift
        self.students: list[Arrays] = []

    def describe(self) -> str:
        return "shift"

    def distil_ensemble(self, student: Arrays, members: list[Arrays], server_round: int) -> Distillation:  # noqa: ARG002
        self.students.append(student)
        return Distillation({key: value + self.shift[key] for key, value in student.items()}, {"distill_steps": 1.0})


def feddf_round(strategy: FedDF, weights: Arrays, step: Arrays, monkeypatch: pytest.MonkeyPatch) -> Arrays:
    """One FedDF round in which the one client moves the weights it gets by `step`; the new global weights."""
    config = ConfigRecord({SERVER_ROUND: 1, LEARNING_RATE: 0.05, LOCAL_EPOCHS: 1})
    (message,) = strategy.configure_train(1, to_record(weights), config, FakeGrid([1]))
    trained = {key: value + step[key] for key, value in weights.items()}
    content = RecordDict({ARRAYS: to_record(trained), METRICS: MetricRecord({NUM_EXAMPLES: 10})})
    arrays, _ = strategy.aggregate_train(1, [reply_from(1, message, content, monkeypatch)])
    assert arrays is not None
    return to_numpy(arrays)


def test_feddf_distillation_enters_the_server_momentum(message_identity: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server momentum steps along (distilled - w): distillation is in the buffer, not thrown away by it."""
    distiller = ShiftingDistiller({"w": np.array([0.5, 0.0], dtype=np.float32)})
    strategy = FedDF(distiller=distiller, server_momentum=0.5, min_train_nodes=1, min_available_nodes=1)
    step = {"w": np.array([1.0, 1.0], dtype=np.float32)}
    first = feddf_round(strategy, {"w": np.zeros(2, dtype=np.float32)}, step, monkeypatch)
    assert distiller.students[0]["w"].tolist() == [1.0, 1.0], "the student is the plain average w + step"
    np.testing.assert_array_equal(first["w"], [1.5, 1.0])
    np.testing.assert_allclose(strategy.optimizer.velocity["w"], [-1.5, -1.0])
    second = feddf_round(strategy, first, step, monkeypatch)
    np.testing.assert_array_equal(distiller.students[1]["w"], [2.5, 2.0])
    # v = 0.5 * (-1.5, -1) + (w1 - distilled) = (-0.75, -0.5) + (-1.5, -1); w2 = w1 - v
    np.testing.assert_allclose(second["w"], [3.75, 2.5])


def test_feddf_without_momentum_releases_the_distilled_model_bit_for_bit(
    message_identity: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(0)
    weights = {"w": rng.normal(size=50).astype(np.float32), "bn.num_batches_tracked": np.array(3, dtype=np.int64)}
    shift = {"w": rng.normal(size=50).astype(np.float32), "bn.num_batches_tracked": np.array(0, dtype=np.int64)}
    step = {"w": rng.normal(size=50).astype(np.float32), "bn.num_batches_tracked": np.array(4, dtype=np.int64)}
    distiller = ShiftingDistiller(shift)
    released = feddf_round(
        FedDF(distiller=distiller, min_train_nodes=1, min_available_nodes=1), weights, step, monkeypatch
    )
    for key, student in distiller.students[0].items():
        np.testing.assert_array_equal(released[key], student + shift[key])
        assert released[key].dtype == weights[key].dtype


# --- Clients keep their own models --------------------------------------------------


class Clients:
    """The real ClientApp for nodes 1..3 (partitions 0..2), each with a Context kept across rounds."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.contexts = {
            node_id: Context(
                run_id=1,
                node_id=node_id,
                node_config={"partition-id": node_id - 1, "num-partitions": NUM_NODES},
                state=RecordDict(),
                run_config=config,
            )
            for node_id in NODE_IDS
        }

    def answer(self, messages: list[Message], monkeypatch: pytest.MonkeyPatch) -> list[Message]:
        replies = []
        for message in messages:
            node_id = message.metadata.dst_node_id
            monkeypatch.setattr(TaskIdentity, "_node_id", node_id)
            replies.append(client_app(message, self.contexts[node_id]))
        assert not any(reply.has_error() for reply in replies), [r.error for r in replies if r.has_error()]
        return replies

    def weights(self, node_id: int) -> Arrays:
        return to_numpy(self.contexts[node_id].state[LOCAL_MODEL])


def play(strategy: FD | FedMD, clients: Clients, server_round: int, monkeypatch: pytest.MonkeyPatch) -> list[Message]:
    """One training round: configure, answer with the real ClientApp, aggregate; returns the messages sent."""
    config = ConfigRecord({SERVER_ROUND: server_round, LEARNING_RATE: 0.05, LOCAL_EPOCHS: 1})
    arrays = ArrayRecord(build_model(str(clients.config["model"]), (1, 28, 28), 10, seed=0).state_dict())
    messages = list(strategy.configure_train(server_round, arrays, config, FakeGrid(NODE_IDS)))
    replies = clients.answer(messages, monkeypatch)
    strategy.aggregate_train(server_round, replies)
    return messages


def test_fd_exchanges_label_tables_with_leave_own_out_teachers(
    message_identity: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = run_config(strategy="fd", partitioner="dirichlet", dirichlet_alpha=0.3)
    clients = Clients(config)
    strategy = FD(num_classes=10, min_train_nodes=NUM_NODES, min_available_nodes=NUM_NODES)
    first = play(strategy, clients, 1, monkeypatch)
    assert all(m.metadata.message_type == TRAIN_LABEL_LOGITS and TEACHER not in m.content for m in first)
    assert all(ARRAYS not in m.content for m in first)
    from fedapp.data import DataSpec, load_node_data  # noqa: PLC0415

    spec = DataSpec.from_config(RunConfig.from_mapping(config))
    assert sorted(strategy.means) == [f"node-{node_id}" for node_id in NODE_IDS]
    for node_id in NODE_IDS:
        counts = np.bincount(load_node_data(spec, node_id - 1, NUM_NODES).train.labels.numpy(), minlength=10)
        held = (counts > 0).astype(np.float32)
        assert counts.max() > 1, "the histogram differs from the flags"
        np.testing.assert_array_equal(strategy.presence[f"node-{node_id}"], held, "presence, not the histogram")
        assert np.all(strategy.means[f"node-{node_id}"][counts == 0] == 0)
    record = strategy.round_metrics()
    assert 0 <= record["consensus_accuracy"] <= 1 and 0 < record["client_accuracy_mean"] < 1
    tables = (list(strategy.means), list(strategy.means.values()), list(strategy.presence.values()))
    second = play(strategy, clients, 2, monkeypatch)
    for message in second:
        devices, means, presence = tables
        expected, has = label_teacher(means, presence, own=devices.index(f"node-{message.metadata.dst_node_id}"))
        sent = to_numpy(message.content[TEACHER])
        np.testing.assert_array_equal(sent[LABEL_LOGITS], expected)
        np.testing.assert_array_equal(sent[HAS_TEACHER], has.astype(np.float32))


def fd_reply(node_id: int, request: Message, row: float, held: list[int], monkeypatch: pytest.MonkeyPatch) -> Message:
    """Node `node_id`'s FD reply: every held label's row is `row` in each class, the others 0."""
    presence = np.array(held, dtype=np.float32)
    table = {LABEL_LOGITS: np.outer(presence, np.full(3, row, dtype=np.float32)), LABEL_PRESENCE: presence}
    content = RecordDict({ARRAYS: to_record(table), METRICS: MetricRecord({NUM_EXAMPLES: 10})})
    return reply_from(node_id, request, content, monkeypatch)


def test_fd_teachers_come_from_every_devices_last_table(
    message_identity: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With partial participation a device's teacher averages the others' last tables, not one round's."""
    strategy = FD(num_classes=3, min_train_nodes=1, min_available_nodes=1)
    config = ConfigRecord({SERVER_ROUND: 1, LEARNING_RATE: 0.05, LOCAL_EPOCHS: 1})

    def train_round(server_round: int, rows: dict[int, float], held: dict[int, list[int]]) -> list[Message]:
        grid = FakeGrid(list(rows))  # the devices sampled this round
        messages = list(strategy.configure_train(server_round, ArrayRecord(), config, grid))
        replies = [
            fd_reply(m.metadata.dst_node_id, m, rows[m.metadata.dst_node_id], held[m.metadata.dst_node_id], monkeypatch)
            for m in messages
        ]
        strategy.aggregate_train(server_round, replies)
        return messages

    train_round(1, {1: 1.0, 2: 2.0}, {1: [1, 1, 0], 2: [1, 0, 0]})
    train_round(2, {3: 4.0}, {3: [1, 1, 1]})
    train_round(3, {2: 8.0}, {2: [0, 1, 0]})  # device 2's new table replaces its first
    teachers = {
        m.metadata.dst_node_id: to_numpy(m.content[TEACHER])
        for m in train_round(4, {1: 0.0, 2: 0.0, 3: 0.0, 4: 0.0}, {node: [1, 1, 1] for node in (1, 2, 3, 4)})
    }
    # label 0 is held by devices 1 (row 1, round 1) and 3 (row 4, round 2); label 1 by 1, 3 and 2 (row 8,
    # round 3); label 2 by 3 only. Each device's own table is left out of its teacher.
    np.testing.assert_allclose(teachers[4][LABEL_LOGITS][:, 0], [2.5, 13 / 3, 4.0])
    np.testing.assert_allclose(teachers[1][LABEL_LOGITS][:, 0], [4.0, 6.0, 4.0])
    np.testing.assert_allclose(teachers[3][LABEL_LOGITS][:, 0], [1.0, 4.5, 0.0])
    assert teachers[3][HAS_TEACHER].tolist() == [1.0, 1.0, 0.0], "nobody else holds label 2"
    np.testing.assert_allclose(teachers[2][LABEL_LOGITS][:, 0], [2.5, 2.5, 4.0])


def test_client_models_persist_across_rounds(message_identity: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client's weights after round 2 derive from its own round-1 weights, never from the server's."""
    for strategy_name in ("fd", "fedmd"):
        config = run_config(strategy=strategy_name, model="logreg", public_size=500)
        clients = Clients(config)
        strategy = build(strategy_name, config)
        play(strategy, clients, 1, monkeypatch)
        after_first = {node_id: clients.weights(node_id) for node_id in NODE_IDS}
        second = play(strategy, clients, 2, monkeypatch)
        assert all(ARRAYS not in m.content for m in second), "no server weights are pushed by default"
        for message in second[:1]:
            node_id = message.metadata.dst_node_id
            from_own = replay(message, config, node_id, after_first[node_id], monkeypatch)
            from_fresh = replay(message, config, node_id, None, monkeypatch)
            for key, value in clients.weights(node_id).items():
                np.testing.assert_array_equal(value, from_own[key])
            assert any(not np.array_equal(value, from_fresh[key]) for key, value in from_own.items())


def build(strategy_name: str, config: dict[str, Any]) -> FD | FedMD:
    sampling = {"min_train_nodes": NUM_NODES, "min_available_nodes": NUM_NODES}
    if strategy_name == "fd":
        return FD(num_classes=10, **sampling)
    distiller = ServerDistiller(RunConfig.from_mapping(config))
    return FedMD(distiller=distiller, server_model=str(config["model"]), num_classes=10, **sampling)


def replay(
    message: Message, config: dict[str, Any], node_id: int, own: Arrays | None, monkeypatch: pytest.MonkeyPatch
) -> Arrays:
    """What node `node_id` ends round 2 with when it starts from `own` (None: a fresh node)."""
    state = (
        RecordDict({LOCAL_MODEL: ArrayRecord({k: torch.from_numpy(v.copy()) for k, v in own.items()})})
        if own
        else RecordDict()
    )
    context = Context(1, node_id, {"partition-id": node_id - 1, "num-partitions": NUM_NODES}, state, config)
    monkeypatch.setattr(TaskIdentity, "_node_id", node_id)
    copy = Message(message.content, dst_node_id=node_id, message_type=message.metadata.message_type)
    client_app(copy, context)
    return to_numpy(context.state[LOCAL_MODEL])


def test_fedmd_round_reports_client_models_consensus_and_distillation(
    message_identity: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = run_config(strategy="fedmd", client_model="2nn,logreg")
    clients = Clients(config)
    strategy = build("fedmd", config)
    first = play(strategy, clients, 1, monkeypatch)
    assert all(m.metadata.message_type == TRAIN_DISTILL and CONSENSUS not in m.content for m in first)
    record = strategy.round_metrics()
    for key in ("client_accuracy", "client_validation_accuracy"):
        assert 0 < record[f"{key}_min"] <= record[f"{key}_mean"] <= record[f"{key}_max"] <= 1
    assert 0.5 < record["consensus_accuracy"] <= 1, "transfer learning on the labelled public set"
    assert record["distill_steps"] >= 1 and "distill_fell_back" in record
    assert strategy.consensus is not None and strategy.consensus.shape == (500, 10)
    second = play(strategy, clients, 2, monkeypatch)
    assert all(to_numpy(m.content[CONSENSUS])[PUBLIC_LOGITS].shape == (500, 10) for m in second)


def test_fedmd_pushes_server_weights_only_when_asked_and_only_to_its_architecture(
    message_identity: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = run_config(strategy="fedmd", client_model="2nn,logreg", push_server_weights=True)

    class Architectures:
        def architecture(self, node_id: int) -> str:
            return RunConfig.from_mapping(config).client_model_for(node_id - 1)

    distiller = ServerDistiller(RunConfig.from_mapping(config))
    strategy = FedMD(
        distiller=distiller,
        server_model="2nn",
        num_classes=10,
        architectures=Architectures(),
        push_weights=True,
        min_train_nodes=NUM_NODES,
        min_available_nodes=NUM_NODES,
    )
    messages = play(strategy, Clients(config), 1, monkeypatch)
    assert {m.metadata.dst_node_id: ARRAYS in m.content for m in messages} == {1: True, 2: False, 3: True}


def test_distillation_loss_is_zero_at_the_teacher() -> None:
    logits = torch.randn(64, 10)
    assert distillation_loss(logits, soft_labels(logits, 1.0), 1.0).item() == pytest.approx(0.0, abs=1e-6)


def test_logit_uploads_are_tiny_next_to_weights() -> None:
    fedmd = to_record({PUBLIC_LOGITS: np.zeros((500, 10), dtype=np.float32)})
    fd = to_record({LABEL_LOGITS: np.zeros((10, 10), dtype=np.float32), LABEL_PRESENCE: np.zeros(10, dtype=np.float32)})
    weights = ArrayRecord(build_model("cnn", (1, 28, 28), 10, seed=0).state_dict())
    assert fedmd.count_bytes() / weights.count_bytes() < 0.01
    assert weights.count_bytes() / fd.count_bytes() > 9_000


def test_fd_and_fedmd_state_survives_a_checkpoint(tmp_path: Any) -> None:
    """What resuming needs of the server side: FD's devices' last tables (by device key), FedMD's consensus."""
    from fedapp.checkpoint import CHECKPOINT_FILE, Checkpoint, read_checkpoint, write_checkpoint  # noqa: PLC0415

    fd = FD(num_classes=3)
    fd.means = {"node-18446744073709551615": np.zeros((3, 3), dtype=np.float32), "b": np.eye(3, dtype=np.float32)}
    fd.presence = {"node-18446744073709551615": np.zeros(3, dtype=np.float32), "b": np.ones(3, dtype=np.float32)}
    fedmd = FedMD(distiller=None, server_model="2nn", num_classes=3)  # type: ignore[arg-type]
    fedmd.consensus, fedmd.consensus_round = np.arange(6, dtype=np.float32).reshape(2, 3), 4
    config = RunConfig.from_mapping(run_config())
    arrays = ArrayRecord(build_model("2nn", (1, 28, 28), 10, seed=0).state_dict())
    state = {"fd": fd.state_dict(), "fedmd": fedmd.state_dict()}
    write_checkpoint(tmp_path / CHECKPOINT_FILE, Checkpoint(4, config.to_mapping(), arrays, state, [{"round": 0}]))
    loaded = read_checkpoint(tmp_path / CHECKPOINT_FILE).strategy_state
    restored_fd, restored_fedmd = FD(num_classes=3), FedMD(distiller=None, server_model="2nn", num_classes=3)  # type: ignore[arg-type]
    restored_fd.load_state_dict(loaded["fd"])
    restored_fedmd.load_state_dict(loaded["fedmd"])
    assert list(restored_fd.means) == list(restored_fd.presence) == ["node-18446744073709551615", "b"]
    np.testing.assert_array_equal(restored_fd.means["b"], np.eye(3))
    np.testing.assert_array_equal(restored_fd.presence["b"], np.ones(3))
    np.testing.assert_array_equal(restored_fedmd.consensus, fedmd.consensus)
    assert restored_fedmd.consensus_round == 4
