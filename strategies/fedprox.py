"""FedProx (Li et al. 2020, "Federated Optimization in Heterogeneous Networks", arXiv:1812.06127).

Each client minimises its local loss plus (mu / 2) ||w - w_global||^2 on every local
step (the term is `strategies.losses.proximal_term`; fedapp's client adds it in
`fedapp.training.train_sgd` with `proximal_mu`); the server sends mu in the train config.
Under systems heterogeneity FedProx keeps the stragglers' partial work, where FedAvg
drops it (the paper's section 5.2 comparison). Aggregation is FedAvg's weighted
average; with mu = 0 and no stragglers FedProx is exactly FedAvg.

Flower 1.41's own `FedProx` only sends mu; this one also owns the straggler policy.
"""

from __future__ import annotations

from collections.abc import Iterable
from logging import INFO

from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.common import log
from flwr.serverapp import Grid

from strategies.fedavg import FedAvg
from strategies.protocol import PROXIMAL_MU


class FedProx(FedAvg):
    """FedAvg whose clients add a proximal term and whose stragglers' partial work is kept."""

    drop_stragglers = False

    def __init__(self, *, proximal_mu: float, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.proximal_mu = proximal_mu

    def summary(self) -> None:
        """Log mu, then FedAvg's settings."""
        log(INFO, "\t├──> FedProx: proximal mu=%s", self.proximal_mu)
        super().summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Send mu with the round's instructions."""
        config[PROXIMAL_MU] = self.proximal_mu
        return super().configure_train(server_round, arrays, config, grid)
