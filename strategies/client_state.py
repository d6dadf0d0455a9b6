"""Strategies whose clients keep state between rounds: SCAFFOLD's c_i, FedBN's BatchNorm layers, Ditto's v_k.

Where that state lives, and why:

- on the node, on its disk (`fedapp/node_state.py`), one file per round the node
  trained in, under a *scope* and the node's stable key. The scope is a random id
  the strategy draws once; it is strategy state, so a run resumed from a checkpoint
  keeps it and its nodes find what they saved in the run it resumes. In simulation
  every node writes to the machine's disk, in deployment each to its own;
- on the server, only which round's state each node is to continue from: the last
  round in which the server aggregated that node's reply (`committed`, by node key),
  also strategy state. Each train (and personal evaluation) message carries the
  scope and that round (`STATE_SCOPE`, `STATE_ROUND`); a node that has none (round 0)
  starts fresh: zero control variate, or the received global model.

Why not Flower's `Context.state`: it belongs to one Flower run, and a resumed run is a
new Flower run, so it would start every node afresh. Why not have the server keep
every c_i (it could: it receives every Delta c_i): N models of memory and of
checkpoint written every round, where the nodes hold one each. Why committed rounds
instead of "the newest file": a node's state from a round whose reply the server did
not aggregate (rejected, too late, or the ServerApp died before aggregating it) is
never built on, so a run resumed after round k continues every node from its state
of round k or before, exactly as the uninterrupted run did, and SCAFFOLD's c stays
(1/N) sum_i c_i.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, Protocol

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord
from flwr.serverapp import Grid

from strategies.fedavg import FedAvg
from strategies.messages import amended
from strategies.protocol import STATE_ROUND, STATE_SCOPE


class NodeKeys(Protocol):
    """The stable key of a node (the app learns it from its nodes), so state survives a resume."""

    def key(self, node_id: int) -> str | None:
        """The stable key of node `node_id`, or None if unknown."""
        ...


def node_key(node_keys: NodeKeys | None, node_id: int) -> str:
    """Node `node_id`'s stable key; without a lookup (a plain Flower app) its id, stable for one run."""
    known = node_keys.key(node_id) if node_keys is not None else None
    return known if known is not None else f"node-{node_id}"


class ClientStateLedger:
    """The scope of a run's node state and, per node key, the round its state is to continue from."""

    def __init__(self, node_keys: NodeKeys | None = None) -> None:
        self.node_keys = node_keys
        self.scope = uuid.uuid4().hex
        self.committed: dict[str, int] = {}

    def key(self, node_id: int) -> str:
        """Node `node_id`'s stable key (`node_key`)."""
        return node_key(self.node_keys, node_id)

    def instructions(self, node_id: int) -> dict[str, str | int]:
        """What a message tells node `node_id`: the scope, and the round whose state to continue from (0: none)."""
        return {STATE_SCOPE: self.scope, STATE_ROUND: self.committed.get(self.key(node_id), 0)}

    def commit(self, node_ids: Iterable[int], server_round: int) -> None:
        """Record that the replies of `node_ids` in `server_round` were aggregated."""
        for node_id in node_ids:
            self.committed[self.key(node_id)] = server_round

    def state_dict(self) -> dict[str, Any]:
        """The scope and the committed rounds, as plain data."""
        return {"scope": self.scope, "committed": dict(self.committed)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (resuming a run)."""
        self.scope = str(state["scope"])
        self.committed = {str(key): int(value) for key, value in state["committed"].items()}


class FedAvgWithClientState(FedAvg):
    """FedAvg whose train (and optionally evaluate) messages go to handlers that keep node state.

    Subclasses name the message types (`train_message_type`, `evaluate_message_type`)
    and may add array records to the train messages (`train_arrays`).
    """

    train_message_type: str = MessageType.TRAIN
    evaluate_message_type: str | None = None

    def __init__(self, *, node_keys: NodeKeys | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ledger = ClientStateLedger(node_keys)

    def train_arrays(self) -> dict[str, ArrayRecord]:
        """Array records sent beside the global weights (none by default)."""
        return {}

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """FedAvg's messages (sampling, stragglers), sent to the stateful handler with each node's instructions."""
        messages = super().configure_train(server_round, arrays, config, grid)
        extra = self.train_arrays()
        return [self._with_state(message, self.train_message_type, extra) for message in messages]

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """FedAvg's aggregation, then `aggregated` with the replies it averaged."""
        replies = list(replies)
        new_arrays, metrics = super().aggregate_train(server_round, replies)
        if new_arrays is not None:
            self.aggregated(server_round, self.usable_replies(replies))
        return new_arrays, metrics

    def aggregated(self, server_round: int, replies: list[Message]) -> None:
        """After `replies` were averaged: their nodes' state of this round becomes the one to continue from."""
        self.ledger.commit([reply.metadata.src_node_id for reply in replies], server_round)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Flower's evaluation messages, sent to `evaluate_message_type`'s handler when there is one."""
        messages = super().configure_evaluate(server_round, arrays, config, grid)
        if self.evaluate_message_type is None:
            return messages
        return [self._with_state(message, self.evaluate_message_type) for message in messages]

    def _with_state(self, message: Message, message_type: str, arrays: dict[str, ArrayRecord] | None = None) -> Message:
        node_id = message.metadata.dst_node_id
        return amended(
            message,
            self.configrecord_key,
            self.ledger.instructions(node_id),
            arrays=arrays,
            message_type=message_type,
        )

    def state_dict(self) -> dict[str, Any]:
        """FedAvg's state and the node-state ledger."""
        return {**super().state_dict(), "client_state": self.ledger.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore FedAvg's state and the ledger (resuming a run)."""
        super().load_state_dict(state)
        self.ledger.load_state_dict(state["client_state"])
