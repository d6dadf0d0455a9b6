"""Ditto (Li, Hu, Beirami, Smith 2021, "Ditto: Fair and Robust Federated Learning Through Personalization", ICML).

Each client trains its copy of the global model as in FedAvg and, on the same
mini-batches with the same learning rate, a personal model v_k that minimises its
local loss plus (lambda / 2) ||v_k - w||^2, w being the global model it received
this round (`ditto-lambda`). The global model is FedAvg's average; the personal
models never leave the clients, which keep them on their disk between rounds
(`strategies/client_state.py`). Nodes evaluate their personal models on their
validation split (`evaluate.personal`); metrics.json reports the accuracy's mean,
min and max beside the global model's central accuracy.

Deliberate differences from the authors' code (`flearn/trainers_MTL/ditto.py`):
- the personal step takes the regulariser implicitly (a proximal step, see
  `strategies/personalization.py`): stable for every lambda, and exactly the global
  model as lambda -> infinity; the authors' explicit step agrees to first order;
- a personal model starts as the global model a client receives the first time it
  is sampled (the authors copy the initial model into every client; with every
  client in round 1 the two are the same);
- the personal step is plain SGD; `client-momentum` applies to the global copy only;
- the global average follows `weighting` (examples by default; the authors' is uniform),
  and no dynamic lambda.
"""

from __future__ import annotations

from collections.abc import Iterable
from logging import INFO
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.common import log
from flwr.serverapp import Grid

from strategies.client_state import FedAvgWithClientState
from strategies.protocol import DITTO_LAMBDA, EVALUATE_PERSONAL, TRAIN_DITTO


class Ditto(FedAvgWithClientState):
    """FedAvg whose clients also train personal models regularised toward the global one."""

    train_message_type = TRAIN_DITTO
    evaluate_message_type = EVALUATE_PERSONAL

    def __init__(self, *, ditto_lambda: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ditto_lambda = ditto_lambda

    def summary(self) -> None:
        """Log lambda, then FedAvg's settings."""
        log(INFO, "\t├──> Ditto: personal models, lambda=%s", self.ditto_lambda)
        super().summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Send lambda with the round's instructions."""
        config[DITTO_LAMBDA] = self.ditto_lambda
        return super().configure_train(server_round, arrays, config, grid)
