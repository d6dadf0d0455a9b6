"""FedSGD (McMahan et al. 2017, the baseline of section 2).

Each sampled client computes the gradient of its local loss over all of its data at
the global weights (one full-batch gradient, no local step) and sends it; the server
averages the gradients weighted by example counts and takes one SGD step:

    w <- w - eta_s * lr * sum_k (n_k / n) g_k

with the round's client learning rate `lr` (so `lr-decay` applies) and the server
learning rate `eta_s` (default 1; `server-momentum` adds heavy-ball momentum). With
these definitions FedAvg with one local epoch and batch size = local data size takes
exactly the same step (the paper's equivalence), which the tests check.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from strategies.arrays import Arrays, reply_arrays
from strategies.fedavg import FedAvg
from strategies.messages import readdressed
from strategies.protocol import LEARNING_RATE, TRAIN_GRADIENT


class FedSGD(FedAvg):
    """Clients send full-batch gradients; the server averages them and steps."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.learning_rate = 0.0

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Ask the sampled clients for gradients (not new weights); remember the round's learning rate."""
        self.learning_rate = float(config[LEARNING_RATE])
        messages = super().configure_train(server_round, arrays, config, grid)
        return [readdressed(message, message_type=TRAIN_GRADIENT) for message in messages]

    def client_updates(self, contents: list[RecordDict]) -> Iterator[Arrays]:
        """Each client's gradient turned into the step it asks for, -lr * g_k (one at a time)."""
        return ({key: -self.learning_rate * grad for key, grad in reply_arrays(c).items()} for c in contents)
