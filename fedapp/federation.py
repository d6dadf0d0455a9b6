"""The federation loop: Flower's strategy hooks, driven round by round with fedapp's bookkeeping.

Flower's `Strategy.start` runs configure -> send -> aggregate -> evaluate. fedapp runs
the same hooks of the same strategy objects (its own and Flower's built-ins), and
adds what a research run needs around them:

- nodes are waited for and known by stable keys, and sampling is seeded per round,
  so the same seed samples the same partitions (`nodes.py`);
- the round's learning rate is set in the train config (`lr-decay`);
- every reply is checked before aggregation (keys, shapes, dtypes, NaN/Inf, and the
  update norm against `max-update-norm`); bad ones are logged, counted and named by
  node and reason in the round's record, never averaged (a strategy may declare what
  its replies carry with `reply_reference(message)`, one of the hooks declared in
  `strategies/hooks.py`);
- a node that answers with an error or not within `round-timeout` (dead, cut off,
  too slow) fails for that round and is named in the round's record;
- too few valid replies keep the previous global model instead of failing the run,
  and the round's record says so (`kept_previous_model`);
- after every round the run's checkpoint is rewritten, and a resumed run starts
  after the round its checkpoint completed;
- bytes down and up are measured from the records actually sent, per client;
- what a strategy reports about its round (`round_metrics()`: stragglers, epsilon, ...)
  goes into the round's record, and its `state_dict()` into the checkpoint; what it
  says about the whole run (`run_summary()`: client sampling, the terms of its privacy
  guarantee) goes into the run's record once the nodes are known;
- before the first round, DP settings the connected nodes cannot run safely are
  refused (`privacy.py`: seeded noise among nodes with their own data);
- before every round the strategy may end the run (`stop_reason()`: its privacy
  budget would be exceeded): the last model is kept, the reason is recorded in
  `metrics.json`, and the run completes with all its outputs;
- under DP every round is aggregated, even with no valid reply: the mechanism releases
  its noise whatever arrives, and its accounting assumes so;
- the global model is evaluated centrally after every round (unless the server
  holds no data; a strategy without one, FD, is scored by its client models' mean
  accuracy on the test set) with the task's metrics (accuracy, or RMSE, MAE and R²),
  nodes' evaluations are pooled into the same metrics, and each round is written to
  `metrics.json` as it completes, then handed to the run's trackers (TensorBoard,
  MLflow: `fedapp/tracking/`); with federated evaluation of a classification, so is
  the spread (mean, min, max) of each evaluated node's own model's accuracy on its
  validation split (`personalized_accuracy_*`: FedBN's and Ditto's personal models,
  the global model for the other strategies);
- federated evaluation rides on the training message by default (`federated-evaluation`):
  each trained client first evaluates the global model it received, which is the previous
  round's, so those figures go into the previous round's record (and reach the
  trackers then); a last exchange after the final round evaluates the final model.
  `separate` sends an evaluation exchange of its own after every round instead;
- in simulation (`simulation-fast-path`), arrays that several messages share reach each
  worker process once (`broadcast.py`) and the engine finds messages by index
  (`dispatch_index.py`); with `clients-per-node` other than 1, a round's sampled clients
  travel packed, one message per simulated SuperNode hosting them, and each client's
  reply is unpacked before screening (`logical_clients.py`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from logging import INFO, WARNING
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.common import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
from flwr.superlink.grid import InMemoryGrid

from fedapp import tasks
from fedapp.attacks import announce_attack
from fedapp.broadcast import ArrayBroadcast
from fedapp.checkpoint import Checkpoint, check_same_nodes
from fedapp.config import RunConfig
from fedapp.evaluation import CentralEvaluator
from fedapp.logical_clients import ClientPacker
from fedapp.nodes import NodeDirectory, OrderedGrid, plain_exchange
from fedapp.outputs import RunOutputs
from fedapp.privacy import check_nodes, secret_sampling_in_use
from fedapp.protocol import EVALUATE_RECEIVED, EVALUATION, EVALUATION_KEYS
from fedapp.round_screen import cap_claims, outlier_rejections, returns_trained_weights, training_claim_problem
from fedapp.tracking import Trackers
from strategies.arrays import Arrays, content_bytes, reply_arrays, reply_metrics, to_numpy, to_record
from strategies.builtin import hooks_for
from strategies.personalization import accuracy_spread
from strategies.protocol import (
    ARRAYS,
    EVAL_ACCURACY,
    LEARNING_RATE,
    LOCAL_EPOCHS,
    METRICS,
    NUM_EXAMPLES,
    PERSONAL_ACCURACY,
    SERVER_ROUND,
    TRAIN_LOSS,
)
from strategies.schedule import round_learning_rate
from strategies.seeding import derive_seed
from strategies.validation import NO_ARRAYS, UNEXPECTED, UNSOLICITED, Rejection, structure_problem, weights_problem

MEGABYTE = 1e6
KILOBYTE = 1e3


@dataclass
class Exchange:
    """The outcome of sending one batch of messages: each reply beside the message it answers."""

    sent: list[Message]
    answered: list[tuple[Message, Message]]
    failed_nodes: list[str]
    bytes_down: int
    bytes_up: int
    messages: int = 0  # the engine carried: one per client, or one per host with logical clients

    @property
    def replies(self) -> list[Message]:
        return [reply for _, reply in self.answered]

    @property
    def failed(self) -> int:
        return len(self.failed_nodes)


class Federation:
    """Runs `config.num_server_rounds` rounds of `strategy` over the nodes behind `grid`."""

    def __init__(
        self,
        grid: Grid,
        directory: NodeDirectory,
        strategy: Strategy,
        config: RunConfig,
        evaluator: CentralEvaluator | None,
        outputs: RunOutputs,
        tracker: Trackers | None = None,
    ) -> None:
        self.config = config
        self.tracker = tracker if tracker is not None else Trackers({})  # none: an untracked run
        self.strategy = strategy
        self.hooks = hooks_for(strategy)
        self.evaluator = evaluator
        self.outputs = outputs
        self.directory = directory
        self.grid = OrderedGrid(grid, directory)
        fast = config.simulation_fast_path and isinstance(grid, InMemoryGrid)
        self.broadcast = ArrayBroadcast(plain_exchange) if fast else None
        packs = config.clients_per_node != 1 and isinstance(grid, InMemoryGrid)
        self.packer = ClientPacker(directory.partition_nodes, config.clients_per_node) if packs else None

    def run(self, arrays: ArrayRecord, resumed: Checkpoint | None = None) -> ArrayRecord:
        """Play every round from the initial `arrays`, or those after `resumed`; return the final global arrays.

        A new run records round 0 (the initial model); a resumed run continues from its
        checkpoint's arrays and round, on nodes that share the data as its run's did.
        """
        log(INFO, "[fedapp] strategy %s:", type(self.strategy).__name__)
        self.strategy.summary()
        self.directory.wait_for_nodes(self.config.min_available_nodes)
        num_partitions = self.directory.num_partitions()
        self.outputs.record_num_partitions(num_partitions)
        self.outputs.record_run_summary(announce_attack(self.config, num_partitions, self.directory.own_data_nodes()))
        self._check_privacy()
        if resumed is None:
            self._record(0, arrays, time.monotonic(), {})
            completed_rounds = 0
        else:
            check_same_nodes(self.config, resumed, num_partitions)
            arrays, completed_rounds = resumed.arrays, resumed.server_round
        last_round = completed_rounds
        try:
            for server_round in range(completed_rounds + 1, self.config.num_server_rounds + 1):
                reason = self.hooks.stop_reason(server_round, len(list(self.grid.get_node_ids())))
                if reason is not None:
                    log(WARNING, "[fedapp] stopping before round %d: %s", server_round, reason)
                    self.outputs.record_stop(server_round, reason)
                    break
                arrays, last_round = self.play_round(server_round, arrays), server_round
            if self.config.evaluates_with_train:
                self._amend_evaluation(last_round, self._federated_evaluation(last_round, arrays), "after the run")
        finally:
            if self.broadcast is not None:
                self.broadcast.close()
        return arrays

    def _check_privacy(self) -> None:
        """Refuse unsafe DP settings for the connected nodes; record the strategy's terms (sampling, privacy)."""
        own_data_nodes = self.directory.own_data_nodes()
        check_nodes(self.config, len(self.directory.online()), own_data_nodes)
        summary = self.hooks.run_summary()
        privacy = summary.get("privacy")
        if privacy:
            secret = secret_sampling_in_use(self.config, own_data_nodes)
            privacy["sampling_randomness"] = "secret" if secret else "seeded"
            if not privacy["private"]:
                log(
                    WARNING,
                    "[fedapp] NOT PRIVATE: dp-noise=%s, the noise follows from the run config",
                    privacy["noise"],
                )
        self.outputs.record_run_summary(summary)

    def play_round(self, server_round: int, arrays: ArrayRecord) -> ArrayRecord:
        """Train, aggregate, evaluate and record one round; return the new global arrays."""
        started = time.monotonic()
        learning_rate = round_learning_rate(self.config.learning_rate, self.config.lr_decay, server_round)
        train_config = ConfigRecord(
            {SERVER_ROUND: server_round, LEARNING_RATE: learning_rate, LOCAL_EPOCHS: self.config.local_epochs}
        )
        if self.config.evaluates_with_train:
            train_config[EVALUATE_RECEIVED] = True
        self._seed_sampler(server_round, "train")
        exchange = self._exchange(self.strategy.configure_train(server_round, arrays, train_config, self.grid))
        if self.config.evaluates_with_train:
            evaluation = self._evaluation_on_arrival(server_round - 1, exchange)
            self._amend_evaluation(server_round - 1, evaluation, f"on arrival by round {server_round}'s clients")
        clients = self._client_traffic(exchange.sent, exchange.replies)
        valid, rejected, capped = self._screen(exchange)
        self.outputs.record_training_samples(self._training_samples(valid))
        train_metrics: MetricRecord | None = None
        strategy_metrics: dict[str, float] = {}
        new_arrays = None
        required = 0 if self.config.dp != "none" else self.config.min_train_nodes
        if len(valid) >= required:
            new_arrays, train_metrics = self.strategy.aggregate_train(server_round, valid)
            arrays = _with_dtypes_of(arrays, new_arrays) if new_arrays is not None else arrays
            strategy_metrics = self.hooks.round_metrics()
        else:
            log(
                WARNING,
                "[fedapp] round %d: %d valid replies < min-train-nodes=%d; keeping the previous global model",
                server_round,
                len(valid),
                self.config.min_train_nodes,
            )
            strategy_metrics = self.hooks.skipped_round_metrics()
        record = {
            "learning_rate": learning_rate,
            "train_loss": _metric(train_metrics, TRAIN_LOSS),
            "nodes_sampled": len(exchange.sent),
            "messages_sent": exchange.messages,
            "nodes_replied": len(exchange.replies),
            "nodes_failed": exchange.failed,
            "failed_nodes": exchange.failed_nodes,
            "updates_rejected": len(rejected),
            "rejected_updates": rejected,
            "claims_capped": capped,
            "updates_aggregated": len(valid) if len(valid) >= required else 0,
            "kept_previous_model": len(valid) < required or (new_arrays is None and self.hooks.has_global_model()),
            "bytes_down": exchange.bytes_down,
            "bytes_up": exchange.bytes_up,
            "clients": clients,
            **strategy_metrics,
            **({} if self.config.evaluates_with_train else self._federated_evaluation(server_round, arrays)),
        }
        self._record(server_round, arrays, started, record)
        return arrays

    def _seed_sampler(self, server_round: int, phase: str) -> None:
        """Seed the sampler Flower's strategies draw from, per run seed, round and phase."""
        random.seed(derive_seed(self.config.seed, "sample", phase, server_round))

    def _exchange(self, messages: Any) -> Exchange:
        """Send `messages`, wait up to `round-timeout`, and split replies from failures.

        A node fails when it replies with an error (its ClientApp raised, or the
        SuperLink reports it unavailable) or not at all within `round-timeout`
        (it died, lost its connection, or is too slow); failures are named by node key.
        """
        sent = list(messages)
        if not sent:
            return Exchange([], [], [], 0, 0, 0)
        exchange = self.broadcast.exchange if self.broadcast is not None else plain_exchange
        if self.packer is not None:
            answers = self.packer.exchange(exchange, self.grid, sent, self.config.round_timeout)
        else:
            answers = exchange(self.grid, sent, self.config.round_timeout)
        answered, failed_nodes = [], []
        for message, answer in zip(sent, answers, strict=True):
            if answer is not None and not answer.has_error():
                answered.append((message, answer))
                continue
            key = self._node_key(message.metadata.dst_node_id)
            reason = (
                answer.error.reason
                if answer is not None
                else f"no reply within round-timeout ({self.config.round_timeout:g}s)"
            )
            log(WARNING, "[fedapp] node %s failed: %s", key, reason)
            failed_nodes.append(key)
        return Exchange(
            sent=sent,
            answered=answered,
            failed_nodes=failed_nodes,
            bytes_down=content_bytes(m.content for m in sent),
            bytes_up=content_bytes(r.content for _, r in answered),
            messages=self.packer.messages_sent if self.packer is not None else len(sent),
        )

    def _screen(self, exchange: Exchange) -> tuple[list[Message], list[dict[str, str]], list[dict[str, Any]]]:
        """Keep the valid replies; log the others and name each by node key and reason.

        Each reply is checked on its own (structure, values, claim), then against the
        round (norm outliers); the kept replies' claims are capped (`fedapp.round_screen`).
        Returns the valid replies, the rejections and the capped claims.
        """
        sent_to = {message.metadata.dst_node_id: message for message in exchange.sent}
        references: dict[int, Any] = {}  # sent ArrayRecord (shared by a round's messages) -> its arrays
        kept, rejected = [], []
        for reply in exchange.replies:
            sent = sent_to.get(reply.metadata.src_node_id)
            problem = self._reply_problem(reply, sent, references)
            if problem is None and sent is not None:
                problem = training_claim_problem(reply, sent)
            if problem is None:
                kept.append((sent, reply))
            else:
                rejected.append(self._rejection(reply, problem))
        round_relative = self.config.dp == "none"
        ratio = self.config.outlier_norm_ratio if round_relative else 0.0
        valid = []
        outliers = outlier_rejections(kept, self._sent_arrays(references), ratio)
        for (_, reply), problem in zip(kept, outliers, strict=True):
            if problem is None:
                valid.append(reply)
            else:
                rejected.append(self._rejection(reply, problem))
        capped = cap_claims(valid, self.config.max_claim_ratio if round_relative else 0.0)
        return valid, rejected, [self._capped(*claim) for claim in capped]

    def _rejection(self, reply: Message, problem: Rejection) -> dict[str, str]:
        """Log a rejected reply; its entry in the round record, by node key and reason."""
        key = self._node_key(reply.metadata.src_node_id)
        log(WARNING, "[fedapp] rejected update from node %s: %s", key, problem)
        return {"node": key, "reason": problem.kind, "detail": problem.detail}

    def _capped(self, reply: Message, claimed: float, counted: float) -> dict[str, Any]:
        """Log a capped claim; its entry in the round record."""
        key = self._node_key(reply.metadata.src_node_id)
        log(WARNING, "[fedapp] node %s claims %g examples; counted as %g (max-claim-ratio)", key, claimed, counted)
        return {"node": key, "claimed": claimed, "counted": counted}

    @staticmethod
    def _sent_arrays(references: dict[int, Any]) -> Callable[[Message], Arrays]:
        """Decode a sent message's weights once per sent record (a round's messages share it)."""

        def sent_arrays(sent: Message) -> Arrays:
            record = sent.content[ARRAYS]
            if id(record) not in references:
                references[id(record)] = to_numpy(record)
            return references[id(record)]

        return sent_arrays

    def _reply_problem(self, reply: Message, sent: Message | None, references: dict[int, Any]) -> Rejection | None:
        """Why `reply` must not be aggregated (see `reply_problem`), given what the strategy says replies carry."""
        reference = self.hooks.reply_reference(sent) if sent is not None else None
        return reply_problem(reply, sent, reference, self.config.max_update_norm, references)

    def _node_key(self, node_id: int) -> str:
        try:
            return self.directory.info(node_id).key
        except KeyError:
            return "unknown node"

    def _training_samples(self, replies: list[Message]) -> dict[str, int]:
        """Each replying node's training samples (the `num-examples` of its train reply), by stable node key.

        Read before aggregation, like `_client_traffic`, from replies that passed screening.
        """
        samples = {}
        for reply in replies:
            for record in reply.content.metric_records.values():
                if NUM_EXAMPLES in record:
                    samples[self._node_key(reply.metadata.src_node_id)] = int(record[NUM_EXAMPLES])  # type: ignore[arg-type]
        return samples

    def _client_traffic(self, sent: list[Message], replies: list[Message]) -> list[dict[str, Any]]:
        """Bytes each sampled client received and sent back, by stable node key.

        Measured before aggregation: some strategies (Flower's FedMedian) consume the
        replies' records while aggregating.
        """
        replied = {reply.metadata.src_node_id: reply for reply in replies}
        traffic = []
        for message in sent:
            node_id = message.metadata.dst_node_id
            reply = replied.get(node_id)
            traffic.append(
                {
                    "node": self._node_key(node_id),
                    "bytes_down": content_bytes([message.content]),
                    "bytes_up": content_bytes([reply.content]) if reply is not None else 0,
                    "replied": reply is not None,
                }
            )
        return traffic

    def _federated_evaluation(self, server_round: int, arrays: ArrayRecord) -> dict[str, Any]:
        """Evaluate `arrays` on sampled nodes' validation splits (when fraction-evaluate > 0)."""
        if self.config.fraction_evaluate <= 0:
            return {}
        self._seed_sampler(server_round, "evaluate")
        config = ConfigRecord({SERVER_ROUND: server_round})
        exchange = self._exchange(self.strategy.configure_evaluate(server_round, arrays, config, self.grid))
        return self._evaluation_fields(server_round, exchange.replies, exchange.bytes_down + exchange.bytes_up)

    def _evaluation_on_arrival(self, evaluated_round: int, exchange: Exchange) -> dict[str, Any]:
        """The federated evaluation of round `evaluated_round`'s model that a training exchange's replies carry.

        Each reply's `EVALUATION` record becomes an evaluation reply to the message it
        answered, so the strategy aggregates it exactly as a separate evaluation's.
        """
        carried = [
            (sent, reply.content[EVALUATION]) for sent, reply in exchange.answered if EVALUATION in reply.content
        ]
        replies = [
            Message(RecordDict({METRICS: MetricRecord(dict(result))}), reply_to=sent) for sent, result in carried
        ]
        return self._evaluation_fields(evaluated_round, replies, sum(result.count_bytes() for _, result in carried))

    def _evaluation_fields(self, server_round: int, replies: list[Message], traffic: int) -> dict[str, Any]:
        """A round record's federated evaluation fields: the pooled task metrics, their spread, nodes and bytes."""
        measured = measured_replies(replies)
        metrics = self.strategy.aggregate_evaluate(server_round, measured) if measured else None
        means = None
        if metrics is not None:
            means = {name: float(metrics[key]) for name, key in EVALUATION_KEYS.items() if key in metrics}  # type: ignore[arg-type]
        pooled = tasks.pooled_summary(self.config.task, means)
        return {
            **{f"federated_{name}": value for name, value in pooled.items()},
            **personalized_accuracy(measured),
            "evaluation_nodes": len(measured),
            "evaluation_bytes": traffic,
        }

    def _amend_evaluation(self, server_round: int, evaluation: dict[str, Any], when: str) -> None:
        """Add the federated evaluation of round `server_round`'s global model to that round's record and trackers."""
        if not evaluation or not self.outputs.amend_round(server_round, evaluation):
            return
        self.tracker.log_round({"round": server_round, **evaluation})
        log(
            INFO,
            "[fedapp] round %d: %s (%d nodes, evaluated %s)",
            server_round,
            ", ".join(tasks.describe("federated", self.config.task, evaluation)),
            evaluation["evaluation_nodes"],
            when,
        )

    def _central_evaluation(self, arrays: ArrayRecord, record: dict[str, Any]) -> dict[str, float | None]:
        """The task's metrics of the global model on the test set (none when the server holds no data).

        A strategy without a global model (FD, classification only) is scored by its
        client models' mean on the test set, once they have reported one; before that,
        by the initial model.
        """
        if not self.hooks.has_global_model() and record.get("client_accuracy_mean") is not None:
            return {"accuracy": float(record["client_accuracy_mean"]), "loss": float(record["client_loss_mean"])}
        return {} if self.evaluator is None else self.evaluator(arrays)

    def _record(self, server_round: int, arrays: ArrayRecord, started: float, record: dict[str, Any]) -> None:
        """Evaluate centrally (if the server has data), then checkpoint, write, track and log the round's record.

        Tracking comes last: a tracked round is always in the checkpoint, so a resumed
        run knows every round its tracked run may hold.
        """
        central = self._central_evaluation(arrays, record)
        full = {
            "round": server_round,
            **{f"central_{name}": value for name, value in central.items()},
            **record,
            "seconds": time.monotonic() - started,
        }
        self.outputs.save_checkpoint(full, arrays, self.hooks.state_dict())
        self.outputs.add_round(full)
        self.tracker.log_round(full)
        log(INFO, "[fedapp] %s", _summary_line(full, self.config.num_server_rounds, self.config.task))


def reply_problem(
    reply: Message, sent: Message | None, reference: Arrays | None, max_update_norm: float, references: dict[int, Any]
) -> Rejection | None:
    """Why `reply` must not be aggregated, checked against the message `sent` it answers.

    A strategy may say what a reply must carry (`reference`, from its
    `reply_reference(message)`, e.g. soft labels: one ArrayRecord). Otherwise a reply must
    return array records under the names it was sent (SCAFFOLD's weights and control
    variate, most strategies' weights alone), each shaped like the one sent (decoded once
    per sent record into `references`, not once per reply); and weights returned by local
    training (not a gradient) must not move further than `max_update_norm` (0: unbounded)
    from those sent.
    """
    if sent is None:
        return Rejection(UNSOLICITED, "reply from a node that was not sent this round's message")
    if reference is not None:
        return _one_record_problem(reply, reference)
    if not sent.content.array_records:
        return None
    return _records_problem(reply, sent, max_update_norm, references)


def _records_problem(
    reply: Message, sent: Message, max_update_norm: float, references: dict[int, Any]
) -> Rejection | None:
    """Why the reply's array records are not those sent, name by name, in structure (and weights in norm)."""
    sent_records = sent.content.array_records
    returned = reply.content.array_records
    if not returned:
        return Rejection(NO_ARRAYS, "reply carries no arrays")
    if set(returned) != set(sent_records):
        return Rejection(UNEXPECTED, f"reply carries ArrayRecords {sorted(returned)}, expected {sorted(sent_records)}")
    for name, record in sent_records.items():
        if id(record) not in references:
            references[id(record)] = to_numpy(record)
        arrays = to_numpy(returned[name])
        problem = (
            weights_problem(arrays, references[id(record)], max_update_norm)
            if name == ARRAYS and returns_trained_weights(sent.metadata.message_type)
            else structure_problem(arrays, references[id(record)])
        )
        if problem is not None:
            return problem
    return None


def _one_record_problem(reply: Message, reference: Arrays) -> Rejection | None:
    """Why `reply` does not carry exactly one ArrayRecord shaped like `reference`; None if it does."""
    returned_records = len(reply.content.array_records)
    if returned_records == 0:
        return Rejection(NO_ARRAYS, "reply carries no arrays")
    if returned_records > 1:
        return Rejection(UNEXPECTED, f"reply carries {returned_records} ArrayRecords, expected one")
    return structure_problem(reply_arrays(reply.content), reference)


def _with_dtypes_of(previous: ArrayRecord, new: ArrayRecord) -> ArrayRecord:
    """`new` with each array in the dtype it had in `previous`.

    Flower's FedOpt strategies (FedAdam, FedYogi, FedAdagrad) return float64 arrays
    for a float32 model; the global model keeps its own dtypes so that clients' replies
    keep matching what they were sent.
    """
    if all(new[key].dtype == previous[key].dtype for key in new if key in previous):
        return new
    dtypes = {key: np.dtype(previous[key].dtype) for key in previous}
    return to_record({key: value.astype(dtypes.get(key, value.dtype)) for key, value in to_numpy(new).items()})


def measured_replies(replies: list[Message]) -> list[Message]:
    """The evaluation replies that measured at least one example.

    A node whose data is too small for a validation split (e.g. 4 digits at
    `validation-fraction` 0.1) evaluates nothing and reports 0 examples; it has no
    weight in the average, and when every sampled node is such a node Flower's
    weighted average would divide by zero.
    """
    return [
        reply
        for reply in replies
        if any(record.get(NUM_EXAMPLES, 0) > 0 for record in reply.content.metric_records.values())
    ]


def personalized_accuracy(replies: list[Message]) -> dict[str, float]:
    """`personalized_accuracy_{mean,min,max}` over the evaluated nodes (none without replies, or for regression).

    Each node's own model is scored on its own validation split: the personal model a
    node reports (`personal-accuracy`: FedBN, Ditto), else the model it was asked to
    evaluate, which for every other strategy is the model that node would use (the
    global one; federated distillation's own model).
    """
    accuracies = []
    for reply in replies:
        metrics = reply_metrics(reply.content)
        own = metrics[PERSONAL_ACCURACY] if PERSONAL_ACCURACY in metrics else metrics.get(EVAL_ACCURACY)
        if own is not None:  # a regression reports no accuracy
            accuracies.append(float(own))  # type: ignore[arg-type]
    if not accuracies:
        return {}
    return {f"personalized_accuracy_{name}": value for name, value in accuracy_spread(accuracies).items()}


def _metric(metrics: MetricRecord | None, key: str) -> float | None:
    """`metrics[key]` as a float, or None when absent."""
    if metrics is None or key not in metrics:
        return None
    return float(metrics[key])  # type: ignore[arg-type]


def readable_bytes(count: float) -> str:
    """`count` bytes in MB (10^6) from one megabyte up, else in KB (10^3), so that a small model's traffic shows."""
    if count >= MEGABYTE:
        return f"{count / MEGABYTE:.1f} MB"
    return f"{count / KILOBYTE:.1f} KB"


def _summary_line(record: dict[str, Any], num_rounds: int, task: str) -> str:
    """One human-readable line per round for the log stream."""
    parts = [f"round {record['round']}/{num_rounds}"]
    if f"central_{tasks.PRIMARY[task]}" in record:
        parts += tasks.describe("central", task, record)
    if record.get("train_loss") is not None:
        parts.append(f"train loss {record['train_loss']:.4f}")
    if record.get("client_accuracy_mean") is not None:
        parts.append(
            f"client models {record['client_accuracy_mean']:.4f} "
            f"({record['client_accuracy_min']:.4f}..{record['client_accuracy_max']:.4f})"
        )
    federated = record.get(f"federated_{tasks.PRIMARY[task]}")
    if federated is not None:
        parts.append(f"federated {tasks.LABELS[tasks.PRIMARY[task]]} {federated:.4f}")
    if "nodes_sampled" in record:
        parts.append(
            f"nodes {record['nodes_replied']}/{record['nodes_sampled']} replied, {record['nodes_failed']} failed, "
            f"{record['updates_rejected']} rejected"
            + (", previous model kept" if record["kept_previous_model"] else "")
        )
        parts.append(f"{readable_bytes(record['bytes_down'])} down, {readable_bytes(record['bytes_up'])} up")
    parts.append(f"{record['seconds']:.1f}s")
    return " | ".join(parts)
