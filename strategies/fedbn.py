"""FedBN (Li et al. 2021, "FedBN: Federated Learning on Non-IID Features via Local Batch Normalization", ICLR).

Every client keeps its own BatchNorm layers (weights, biases, running statistics);
everything else is averaged as in FedAvg. In the authors' code
(`federated/fed_digits.py`, `communication`) the server skips every key containing
"bn" and every client keeps its own. Here the client side does it
(`train.fedbn` in `fedapp/client_app.py`): it trains the received weights with its
own BatchNorm layers in place of the received ones, selected by module type
(`fedapp.models.batch_norm_keys`), and keeps them on its disk between rounds
(`strategies/client_state.py`). The model must have BatchNorm layers (`cnn-bn`,
`cnn-small-bn`); config validation refuses others.

Each client's own model (the global layers with its BatchNorm layers) is what FedBN
is about, so nodes evaluate it on their validation split (`evaluate.personal`), and
metrics.json reports its accuracy's mean, min and max.

Deliberate differences: the server averages the BatchNorm layers too, weighted by
examples like the rest, but only so that it has a complete global model to evaluate
centrally; no client trains from them, except that a client taking part for the
first time starts from them (in the paper, from the initial model; with every client
in round 1, as in our presets, that is the same). The authors average uniformly;
we follow `weighting` (examples by default). The BatchNorm arrays travel with the
weights both ways (a few kilobytes).
"""

from __future__ import annotations

from logging import INFO

from flwr.common import log

from strategies.client_state import FedAvgWithClientState
from strategies.protocol import EVALUATE_PERSONAL, TRAIN_FEDBN


class FedBN(FedAvgWithClientState):
    """FedAvg whose clients keep their BatchNorm layers; nodes evaluate their own models."""

    train_message_type = TRAIN_FEDBN
    evaluate_message_type = EVALUATE_PERSONAL

    def summary(self) -> None:
        """Say that BatchNorm layers stay local, then FedAvg's settings."""
        log(INFO, "\t├──> FedBN: BatchNorm layers stay on the clients")
        super().summary()
