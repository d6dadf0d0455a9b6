"""Weighted FedAvg (McMahan et al. 2017, Algorithm 1) with a server optimizer.

Clients run local SGD from the global weights; the server averages their models,
weighted by the examples each trained on (`weighting = "examples"`, the paper's
n_k / n) or equally (`"uniform"`). The average is applied through `ServerOptimizer`:
with the default server learning rate 1 and no momentum this is exactly the paper's
update; `server-momentum` > 0 gives FedAvgM (Hsu et al. 2019).

Sampling and message construction are Flower's `FedAvg`; this class replaces only
the aggregation, whose arithmetic lives in `aggregation.py`.
"""

from __future__ import annotations

from collections.abc import Iterable
from logging import INFO

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.common import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg as FlowerFedAvg

from fedapp.protocol import METRICS, NUM_EXAMPLES
from strategies.aggregation import aggregation_weights, difference, weighted_average
from strategies.arrays import Arrays, reply_arrays, to_numpy, to_record
from strategies.server_optimizer import ServerOptimizer


class FedAvg(FlowerFedAvg):
    """FedAvg with example- or uniform-weighted averaging and a server learning rate/momentum."""

    def __init__(
        self,
        *,
        weighting: str = "examples",
        server_learning_rate: float = 1.0,
        server_momentum: float = 0.0,
        **sampling: float | int,
    ) -> None:
        super().__init__(**sampling)  # type: ignore[arg-type]
        self.weighting = weighting
        self.optimizer = ServerOptimizer(server_learning_rate, server_momentum)
        self.global_arrays: Arrays = {}

    def summary(self) -> None:
        """Log the aggregation settings, then Flower's sampling settings."""
        log(INFO, "\t├──> Aggregation: weighting=%s", self.weighting)
        log(
            INFO,
            "\t├──> Server optimizer: learning rate=%s momentum=%s",
            self.optimizer.learning_rate,
            self.optimizer.momentum,
        )
        super().summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Remember the global weights the round starts from, then sample and send as Flower does."""
        self.global_arrays = to_numpy(arrays)
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Average the replies' weights and apply the server optimizer step."""
        contents = [reply.content for reply in replies if not reply.has_error()]
        if not contents:
            return None, None
        weights = aggregation_weights([int(c[METRICS][NUM_EXAMPLES]) for c in contents], self.weighting)
        average = weighted_average([reply_arrays(c) for c in contents], weights)
        new_arrays = self.optimizer.step(self.global_arrays, difference(self.global_arrays, average))
        return to_record(new_arrays), self.train_metrics_aggr_fn(contents, self.weighted_by_key)
