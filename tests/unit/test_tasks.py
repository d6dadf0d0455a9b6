"""Tasks: the loss follows the labels, and nodes' evaluation means pool into the metrics of the union."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from torch import nn

from fedapp import tasks
from fedapp.data import LabelledSplit
from fedapp.training import evaluate, full_batch_gradient, train_sgd


class Fixed(nn.Module):
    """A 'model' that returns the predictions it was given for the inputs' row numbers."""

    def __init__(self, predictions: torch.Tensor) -> None:
        super().__init__()
        self.predictions = predictions

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictions[x[:, 0].long()]


def test_the_loss_is_cross_entropy_for_classes_and_mse_for_targets() -> None:
    logits, classes = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    assert torch.equal(tasks.loss(logits, classes), F.cross_entropy(logits, classes))
    outputs, targets = torch.randn(6, 1), torch.randn(6)
    assert torch.equal(tasks.loss(outputs, targets), F.mse_loss(outputs[:, 0], targets))
    assert tasks.task_of(classes) == "classification" and tasks.task_of(targets) == "regression"


def test_nodes_regression_means_pool_into_the_rmse_mae_and_r2_of_their_union() -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(150, 70, 40)
    predicted = truth + rng.normal(0, 50, 40)
    offset, scale = 150.0, 70.0
    standardised = torch.from_numpy(((truth - offset) / scale).astype(np.float32))
    model = Fixed(torch.from_numpy(((predicted - offset) / scale).astype(np.float32)).unsqueeze(1))
    rows = torch.arange(40, dtype=torch.float32).unsqueeze(1)
    nodes = [(0, 13), (13, 40)]
    means = [evaluate(model, LabelledSplit(rows[a:b], standardised[a:b], offset, scale)) for a, b in nodes]
    counts = [b - a for a, b in nodes]
    pooled = {key: sum(m[key] * n for m, n in zip(means, counts, strict=True)) / 40 for key in means[0]}
    metrics = tasks.summary("regression", pooled)
    assert metrics["rmse"] == pytest.approx(math.sqrt(mean_squared_error(truth, predicted)), rel=1e-5)
    assert metrics["mae"] == pytest.approx(mean_absolute_error(truth, predicted), rel=1e-5)
    assert metrics["r2"] == pytest.approx(r2_score(truth, predicted), rel=1e-4)
    per_node_r2 = [tasks.summary("regression", m)["r2"] for m in means]
    assert all(abs(r - metrics["r2"]) > 1e-3 for r in per_node_r2), "pooled R² is not an average of nodes' R²"


def test_classification_metrics_and_missing_replies() -> None:
    assert tasks.summary("classification", {"loss": 0.5, "accuracy": 0.9}) == {"accuracy": 0.9, "loss": 0.5}
    assert tasks.pooled_summary("regression", None) == {"rmse": None, "mae": None, "r2": None, "loss": None}
    assert tasks.headline("central", "classification", {"central_accuracy": 0.969}) == "central accuracy: 0.9690"
    record = {"central_rmse": 55.0, "central_mae": 44.0, "central_r2": 0.45}
    assert tasks.headline("central", "regression", record) == "central RMSE: 55.0000, MAE: 44.0000, R²: 0.4500"
    constant = {"loss": 0.0, "mse": 1.0, "mae": 1.0, "target_mean": 2.0, "target_square_mean": 4.0}
    assert tasks.summary("regression", constant)["r2"] is None, "no R² of targets that do not vary"


def test_fedsgd_and_fedprox_client_math_run_on_regression_targets() -> None:
    """The strategies that refuse nothing: a full-batch MSE gradient (FedSGD) and proximal SGD (FedProx)."""
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(30, 4, generator=generator)
    targets = features @ torch.tensor([1.0, -2.0, 0.5, 0.0])
    data = LabelledSplit(features, targets)
    model = nn.Linear(4, 1)
    gradients, loss = full_batch_gradient(model, data)
    expected = torch.autograd.grad(F.mse_loss(model(features)[:, 0], targets), model.weight)[0]
    assert torch.allclose(gradients["weight"], expected, atol=1e-6)
    assert loss == pytest.approx(F.mse_loss(model(features)[:, 0], targets).item(), rel=1e-5)
    before = evaluate(model, data)["mse"]
    train_sgd(model, data, epochs=20, batch_size=5, learning_rate=0.05, generator=generator, proximal_mu=0.01)
    assert evaluate(model, data)["mse"] < before / 10
