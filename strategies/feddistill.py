"""Federated distillation by logit exchange: what FD (`fd.py`) and FedMD (`fedmd.py`) share.

Jeong et al. 2018 (FD, arXiv:1811.11479) and Li & Wang 2019 (FedMD, arXiv:1910.03581):
clients share what their models predict, never their weights, so the upload does not
grow with the model and client architectures may differ. Both papers keep every
client's model across rounds and report the accuracy of those models, so:

- each client keeps its own model in its Flower `Context.state` for the whole run
  (in simulation and in deployment); a resumed run is a new Flower run with a new
  `Context`, so its clients start again from their initial models;
- after its round every client reports its own model's accuracy on its validation
  split and, when it holds a share of the run's dataset (simulation and demos), on the
  run's held-out test set; the round's record gets their mean, min and max over the
  clients that replied (`client_accuracy_*` on the test set, `client_validation_accuracy_*`);
- federated evaluation asks each node to evaluate its own model (`evaluate.local`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg as FlowerFedAvg

from strategies.arrays import reply_metrics
from strategies.hooks import FederationHooks
from strategies.messages import readdressed
from strategies.protocol import EVALUATE_LOCAL, TEST_ACCURACY, TEST_LOSS, VALIDATION_ACCURACY


class NodeArchitectures(Protocol):
    """Which model architecture a node trains (the app learns it from its nodes)."""

    def architecture(self, node_id: int) -> str | None:
        """The architecture of node `node_id`, or None if unknown."""
        ...


def spread(name: str, values: Sequence[float]) -> dict[str, float]:
    """`{name}_mean`, `{name}_min` and `{name}_max` of `values` (nothing for no values)."""
    if not values:
        return {}
    return {f"{name}_mean": sum(values) / len(values), f"{name}_min": min(values), f"{name}_max": max(values)}


def client_model_metrics(contents: Sequence[RecordDict]) -> dict[str, float]:
    """The clients' own models after the round: accuracy (and loss) on the test set and their validation splits."""
    metrics = [reply_metrics(content) for content in contents]

    def values(key: str) -> list[float]:
        return [float(m[key]) for m in metrics if key in m]  # type: ignore[arg-type]

    figures = {
        **spread("client_accuracy", values(TEST_ACCURACY)),
        **spread("client_validation_accuracy", values(VALIDATION_ACCURACY)),
    }
    losses = values(TEST_LOSS)
    if losses:
        figures["client_loss_mean"] = sum(losses) / len(losses)
    return figures


class FederatedDistillation(FlowerFedAvg, FederationHooks):
    """Sampling as Flower's FedAvg; clients keep and evaluate their own models."""

    def __init__(self, *, num_classes: int, **sampling: float | int) -> None:
        super().__init__(**sampling)  # type: ignore[arg-type]
        self.num_classes = num_classes
        self._round_metrics: dict[str, float] = {}

    def round_metrics(self) -> dict[str, float]:
        """The round's figures: client models' accuracies, the consensus's accuracy, distillation figures."""
        return dict(self._round_metrics)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Sample as Flower does, but ask each node to evaluate its own model (no weights are sent)."""
        sampled = super().configure_evaluate(server_round, arrays, config, grid)
        local = RecordDict({self.configrecord_key: config})
        return [readdressed(message, content=local, message_type=EVALUATE_LOCAL) for message in sampled]
