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
- clients are sampled by a `ClientSampler` (`sampling.py`): Flower's fixed-size rule
  without replacement (the default, drawing what Flower's `FedAvg` draws), or Poisson
  sampling as DP-FedAvg assumes; the app decides whether the draws are seeded or secret;
- with `dp` set, the weighted average is replaced by DP-FedAvg's clipped,
  fixed-denominator, noised average (`strategies/dp.py`), released in every round,
  even one in which no update arrived;
- without DP, `aggregation` may replace the weighted mean of the updates by a
  Byzantine-robust rule (`robust_aggregation.py`: median, trimmed mean, (Multi-)Krum,
  Bulyan, centered clipping); a round with fewer updates than the rule needs keeps the model.

Why sampling is not left to Flower's `FedAvg.configure_train`: it draws a fixed number
of nodes from Python's global `random`, which can be neither Poisson nor secret.
Flower's `FedAvg` still provides evaluation, metric aggregation and its settings; the
arithmetic lives in `aggregation.py`, `server_optimizer.py`, `stragglers.py` and `privacy.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from logging import INFO, WARNING
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.common import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg as FlowerFedAvg
from flwr.serverapp.strategy.strategy_utils import sample_nodes

from strategies.aggregation import aggregation_weights, difference, weighted_average
from strategies.arrays import Arrays, reply_arrays, reply_metrics, to_numpy, to_record
from strategies.dp import DifferentialPrivacy
from strategies.hooks import FederationHooks
from strategies.messages import amended
from strategies.protocol import LOCAL_EPOCHS, SERVER_ROUND
from strategies.robust_aggregation import MEAN, AggregationRule, robust_average
from strategies.sampling import FIXED, ClientSampler, seeded_sampling
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
        sampler: ClientSampler | None = None,
        privacy: DifferentialPrivacy | None = None,
        aggregation: AggregationRule | None = None,
        **sampling: float | int,
    ) -> None:
        super().__init__(**sampling)  # type: ignore[arg-type]
        self.sampler = sampler or (
            privacy.sampler
            if privacy
            else ClientSampler(FIXED, self.fraction_train, self.min_train_nodes, seeded_sampling(seed))
        )
        if privacy is not None and privacy.sampler is not self.sampler:
            raise ValueError("the DP mechanism must account the strategy's own client sampler")
        self.weighting = weighting
        self.optimizer = ServerOptimizer(server_learning_rate, server_momentum)
        self.straggler_fraction = straggler_fraction
        self.seed = seed
        self.privacy = privacy
        self.aggregation = aggregation or AggregationRule()
        if privacy is not None and self.aggregation.privacy_problem():
            raise ValueError(self.aggregation.privacy_problem())
        self.previous_update: Arrays = {}
        self.global_arrays: Arrays = {}
        self.stragglers: dict[int, int] = {}
        self.population = 0
        self._round_metrics: dict[str, float] = {}

    def summary(self) -> None:
        """Log the aggregation settings, then Flower's sampling settings."""
        log(
            INFO,
            "\t├──> Aggregation: %s, weighting=%s",
            self.aggregation.describe(),
            "uniform (DP)" if self.privacy else self.weighting,
        )
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
        log(INFO, "\t├──> Client sampling: %s, q=%s", self.sampler.method, self.sampler.fraction)
        if self.privacy:
            terms = self.privacy.describe()
            log(
                INFO,
                "\t├──> Differential privacy: %s, C=%s, z=%s, delta=%s, epsilon for %s neighbours, %s noise",
                terms["mode"],
                terms["clipping_norm"],
                terms["noise_multiplier"],
                terms["delta"],
                terms["neighbouring_relation"],
                terms["noise"],
            )
            if not self.privacy.noise.private:
                log(WARNING, "\t├──> NOT PRIVATE: the DP noise is seeded from the run config (dp-noise)")
        super().summary()

    def run_summary(self) -> dict[str, Any]:
        """How clients are sampled, and the terms of the privacy guarantee (None without DP)."""
        return {
            "client_sampling": self.sampler.method,
            "privacy": self.privacy.describe() if self.privacy else None,
        }

    def stop_reason(self, server_round: int, num_nodes: int) -> str | None:
        """Stop before a round whose release would spend more than the privacy budget."""
        return self.privacy.stop_reason(server_round, num_nodes) if self.privacy else None

    def state_dict(self) -> dict[str, Any]:
        """What carries over between rounds: the server optimizer's momentum, the privacy state, the last aggregate."""
        return {
            "server_optimizer": self.optimizer.state_dict(),
            "privacy": self.privacy.state_dict() if self.privacy else None,
            "previous_update": dict(self.previous_update),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (resuming a run; a checkpoint without the last aggregate starts at 0)."""
        self.optimizer.load_state_dict(state["server_optimizer"])
        self.previous_update = dict(state.get("previous_update", {}))
        if self.privacy:
            self.privacy.load_state_dict(state["privacy"])

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Sample this round's clients, then make some of them stragglers."""
        self.global_arrays = to_numpy(arrays)
        if self.privacy:
            self.privacy.configure(config)
        _, population = sample_nodes(grid, self.min_available_nodes, 0)  # only waits for enough nodes
        node_ids = self.sampler.sample(population, server_round)
        log(
            INFO,
            "configure_train: Sampled %s nodes (out of %s, %s sampling)",
            len(node_ids),
            len(population),
            self.sampler.method,
        )
        config[SERVER_ROUND] = server_round
        record = RecordDict({self.arrayrecord_key: arrays, self.configrecord_key: config})
        messages = [Message(record, dst_node_id=node_id, message_type=MessageType.TRAIN) for node_id in node_ids]
        self.population = len(population)
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
        return amended(message, self.configrecord_key, {LOCAL_EPOCHS: epochs})

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

    def _average(self, updates: Iterator[Arrays], weights: list[float]) -> Arrays:
        """The round's aggregate update under the `aggregation` rule (the weighted mean streams its updates)."""
        if self.aggregation.name == MEAN:
            return weighted_average(updates, weights)
        reference = self.previous_update or None  # centered clipping starts from the last aggregate
        self.previous_update = robust_average(list(updates), weights, self.aggregation, reference)
        return self.previous_update

    def server_update(
        self,
        server_round: int,  # noqa: ARG002 (the hook's signature; FedDF's override uses it)
        average: Arrays,
        contents: list[RecordDict],  # noqa: ARG002 (the hook's signature; FedDF's override uses it)
    ) -> Arrays:
        """The update the server optimizer steps along, from the round's `average` update: FedAvg's is `average`.

        A subclass that post-processes the average (FedDF distils it) overrides this, so
        the server learning rate and momentum apply to what it makes of the average.
        """
        return average

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Average the replies' updates (weighted, or privately) and take the server optimizer step.

        Without DP a round with no usable update keeps the model (None); with DP the round
        still releases its noise on the empty sum, as the accounted mechanism does.
        """
        replies = [r for r in replies if not r.has_error()]
        contents = [r.content for r in self.usable_replies(replies)]
        self._round_metrics = {
            "stragglers": float(len(self.stragglers)),
            "stragglers_dropped": float(len(replies) - len(contents)),
        }
        if not contents and not self.privacy:
            return None, None
        updates = self.client_updates(contents)
        if self.privacy:
            average, privacy_metrics = self.privacy.release(
                list(updates), self.global_arrays, self.population, server_round
            )
            self._round_metrics.update(privacy_metrics)
        elif len(contents) < self.aggregation.min_replies:
            log(WARNING, "%s: %d updates, fewer than it needs; model kept", self.aggregation.describe(), len(contents))
            return None, None
        else:
            weights = aggregation_weights(
                [int(reply_metrics(c)[self.weighted_by_key]) for c in contents], self.weighting
            )
            average = self._average(updates, weights)
        average = self.server_update(server_round, average, contents)
        pseudo_gradient = {key: -value for key, value in average.items()}
        new_arrays = self.optimizer.step(self.global_arrays, pseudo_gradient)
        metrics = self.train_metrics_aggr_fn(contents, self.weighted_by_key) if contents else None
        return to_record(new_arrays), metrics
