"""The local training loop and evaluation on real MNIST partitions."""

from __future__ import annotations

import torch

from fedapp.data import DataSpec, SourceSpec, load_node_data
from fedapp.data.partition import PartitionSpec
from fedapp.models import build_model
from fedapp.training import evaluate, full_batch_gradient, train_sgd
from strategies.seeding import torch_generator

NODE = load_node_data(DataSpec(SourceSpec("mnist"), PartitionSpec("iid", 0.5, 2, 0), 0.1, 0), 0, 10)


def test_sgd_steps_follow_epochs_and_batch_size() -> None:
    model = build_model("2nn", (1, 28, 28), 10, seed=0)
    result = train_sgd(
        model, NODE.train, epochs=2, batch_size=32, learning_rate=0.05, generator=torch_generator(0, "t")
    )
    batches_per_epoch = -(-len(NODE.train) // 32)
    assert result.steps == 2 * batches_per_epoch and result.examples == len(NODE.train)


def test_training_lowers_the_loss_and_raises_accuracy() -> None:
    model = build_model("cnn", (1, 28, 28), 10, seed=0)
    before = evaluate(model, NODE.train)
    train_sgd(model, NODE.train, epochs=2, batch_size=10, learning_rate=0.05, generator=torch_generator(0, "t"))
    after = evaluate(model, NODE.train)
    assert after["loss"] < before["loss"] / 2 and after["accuracy"] > max(0.8, before["accuracy"] + 0.5)


def test_training_is_deterministic_given_the_generator() -> None:
    states = []
    for _ in range(2):
        model = build_model("2nn", (1, 28, 28), 10, seed=0)
        train_sgd(model, NODE.train, epochs=1, batch_size=16, learning_rate=0.1, generator=torch_generator(5, "t", 1))
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_full_batch_gradient_is_the_gradient_of_the_mean_loss() -> None:
    model = build_model("2nn", (1, 28, 28), 10, seed=0)
    gradients, loss = full_batch_gradient(model, NODE.train)
    model.zero_grad()
    reference = torch.nn.functional.cross_entropy(model(NODE.train.features), NODE.train.labels)
    reference.backward()
    assert abs(loss - reference.item()) < 1e-5
    for name, parameter in model.named_parameters():
        assert torch.allclose(gradients[name], parameter.grad, atol=1e-6)
