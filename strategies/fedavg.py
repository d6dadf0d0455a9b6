"""Weighted FedAvg (McMahan et al. 2017, Algorithm 1) with a server optimizer, stragglers and DP.

Clients run local SGD from the global weights w and send back w_k. The server averages
the updates w_k - w, weighted by the examples each client trained on (`weighting =
"examples"`, the paper's n_k / n) or equally (`"uniform"`), and applies the average
through `ServerOptimizer`: with the default server learning rate 1 and no momentum
this is exactly the paper's w <- sum_k (n_k / n) w_k; `server-momentum` > 0 gives
FedAvgM (Hsu et al. 2019).

Deliberate additions:
- systems heterogeneity (FedProx paper, section 5.2): `straggler-fraction` of the
  sampled clients are told to run fewer epochs; FedAvg drops their updates;
- with `dp` set, the weighted average is replaced by DP-FedAvg's clipped,
  fixed-denominator, noised average (`strategies/dp.py`).

Sampling and message construction are Flower's `FedAvg`; the arithmetic lives in
`aggregation.py`, `server_optimizer.py`, `stragglers.py` and `privacy.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from logging import INFO
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.common import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg as FlowerFedAvg

from strategies.aggregation import aggregation_weights, difference, weighted_average
from strategies.arrays import Arrays, reply_arrays, reply_metrics, to_numpy, to_record
from strategies.dp import DifferentialPrivacy
from strategies.hooks import FederationHooks
from strategies.messages import readdressed
from strategies.protocol import LOCAL_EPOCHS
from strategies.seeding import numpy_rng
from strategies.server_optimizer import ServerOptimizer
from strategies.stragglers import choose_stragglers


class FedAvg(FlowerFedAvg, FederationHooks):
    """FedAvg with weighted update averaging, a server optimizer, stragglers and optional DP."""

    drop_stragglers = True

    def __init__(
        self,
        *,
        weighting: str = "examples",
        server_learning_rate: float = 1.0,
        server_momentum: float = 0.0,
        straggler_fraction: float = 0.0,
        seed: int = 0,
        privacy: DifferentialPrivacy | None = None,
        **sampling: float | int,
    ) -> None:
        super().__init__(**sampling)  # type: ignore[arg-type]
        self.weighting = weighting
        self.optimizer = ServerOptimizer(server_learning_rate, server_momentum)
        self.straggler_fraction = straggler_fraction
        self.seed = seed
        self.privacy = privacy
        self.global_arrays: Arrays = {}
        self.stragglers: dict[int, int] = {}
        self.num_sampled = 0
        self.population = 0
        self._round_metrics: dict[str, float] = {}

    def summary(self) -> None:
        """Log the aggregation settings, then Flower's sampling settings."""
        log(INFO, "\t├──> Aggregation: weighting=%s", "uniform (DP)" if self.privacy else self.weighting)
        log(
            INFO,
            "\t├──> Server optimizer: learning rate=%s momentum=%s",
            self.optimizer.learning_rate,
            self.optimizer.momentum,
        )
        if self.straggler_fraction:
            action = "dropped" if self.drop_stragglers else "kept"
            log(
                INFO,
                "\t├──> Stragglers: %.0f%% of sampled clients, partial work %s",
                100 * self.straggler_fraction,
                action,
            )
        if self.privacy:
            log(
                INFO,
                "\t├──> Differential privacy: %s clipping C=%s, noise multiplier z=%s, delta=%s",
                self.privacy.mode,
                self.privacy.clipping_norm,
                self.privacy.noise_multiplier,
                self.privacy.ledger.delta,
            )
        super().summary()

    def state_dict(self) -> dict[str, Any]:
        """What carries over between rounds: the server optimizer's momentum and the privacy ledger."""
        return {
            "server_optimizer": self.optimizer.state_dict(),
            "privacy_ledger": self.privacy.ledger.state_dict() if self.privacy else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (resuming a run)."""
        self.optimizer.load_state_dict(state["server_optimizer"])
        if self.privacy:
            self.privacy.ledger.load_state_dict(state["privacy_ledger"])

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Sample as Flower does, then make some sampled clients stragglers."""
        self.global_arrays = to_numpy(arrays)
        if self.privacy:
            self.privacy.configure(config)
        messages = list(super().configure_train(server_round, arrays, config, grid))
        self.num_sampled = len(messages)
        self.population = len(list(grid.get_node_ids()))
        rng = numpy_rng(self.seed, "stragglers", server_round)
        epochs = int(config[LOCAL_EPOCHS]) if LOCAL_EPOCHS in config else 1
        self.stragglers = choose_stragglers(
            [m.metadata.dst_node_id for m in messages], self.straggler_fraction, epochs, rng
        )
        return [
            self._as_straggler(m, self.stragglers[m.metadata.dst_node_id])
            if m.metadata.dst_node_id in self.stragglers
            else m
            for m in messages
        ]

    def _as_straggler(self, message: Message, epochs: int) -> Message:
        """The same message, telling its node to stop after `epochs` epochs."""
        config = ConfigRecord(dict(message.content[self.configrecord_key]))
        config[LOCAL_EPOCHS] = epochs
        content = RecordDict(
            {self.arrayrecord_key: message.content[self.arrayrecord_key], self.configrecord_key: config}
        )
        return readdressed(message, content=content)

    def round_metrics(self) -> dict[str, float]:
        """Stragglers chosen and dropped in the round just aggregated, and its privacy figures under DP."""
        return dict(self._round_metrics)

    def skipped_round_metrics(self) -> dict[str, float]:
        """What a round that aggregates nothing still reports: the unchanged cumulative epsilon."""
        return {"epsilon": self.privacy.ledger.spent()} if self.privacy else {}

    def usable_replies(self, replies: Iterable[Message]) -> list[Message]:
        """The replies that enter aggregation: no errors, and no stragglers when they are dropped."""
        return [
            r
            for r in replies
            if not r.has_error() and not (self.drop_stragglers and r.metadata.src_node_id in self.stragglers)
        ]

    def client_updates(self, contents: list[RecordDict]) -> Iterator[Arrays]:
        """Each reply's change to the global weights, w_k - w, one at a time (each is used once, then freed)."""
        return (difference(reply_arrays(content), self.global_arrays) for content in contents)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Average the replies' updates (weighted, or privately) and take the server optimizer step."""
        replies = [r for r in replies if not r.has_error()]
        contents = [r.content for r in self.usable_replies(replies)]
        self._round_metrics = {
            "stragglers": float(len(self.stragglers)),
            "stragglers_dropped": float(len(replies) - len(contents)),
        }
        if not contents:
            self._round_metrics.update(self.skipped_round_metrics())
            return None, None
        updates = self.client_updates(contents)
        if self.privacy:
            average, privacy_metrics = self.privacy.average(
                list(updates), self.num_sampled, self.population, server_round
            )
            self._round_metrics.update(privacy_metrics)
        else:
            weights = aggregation_weights(
                [int(reply_metrics(c)[self.weighted_by_key]) for c in contents], self.weighting
            )
            average = weighted_average(updates, weights)
        pseudo_gradient = {key: -value for key, value in average.items()}
        new_arrays = self.optimizer.step(self.global_arrays, pseudo_gradient)
        return to_record(new_arrays), self.train_metrics_aggr_fn(contents, self.weighted_by_key)
