"""Logical clients in simulation: a round's sampled clients packed onto few SuperNodes, one message each.

Flower's simulation engine costs about 2 ms per message (Ray task submission, the
`Context` pickled both ways, the reply's round trip) and keeps one message in flight
per actor, so a 2NN round of 100 one-client messages spends more time in the engine
than in training (docs/performance-cohorts.md). Here every simulated SuperNode is
still one client with its own key, data and seed, and the strategies sample clients
as before; only the transport changes. With `clients-per-node` K > 1 the clients are
grouped in blocks of K consecutive partitions, block b living on the SuperNode of
partition b*K (its host). The server sends each host one message listing its sampled
clients and each one's records (`pack`); the host's ClientApp runs the ordinary
handler once per client in that client's own `Context` (`serve_clients`): its
partition in the node config, its `Context.state` kept by the host under the client's
prefix. The reply holds one set of records per client, or that client's error; the
server turns it back into one reply per client (`unpack_answer`), addressed from the
client's own node, so screening and aggregation see exactly what they see with K = 1.

A client that raises fails alone (its state stays as it was before the round); a host
that dies or exceeds `round-timeout` fails every client it carried that round.
Deployments never pack: each SuperNode is one client there.
"""

from __future__ import annotations

import copy
import math
import os
import traceback
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from logging import ERROR, INFO

from flwr.app import ConfigRecord, Context, Error, Message, RecordDict
from flwr.common import log
from flwr.common.constant import ErrorCode
from flwr.serverapp import Grid

CLIENTS = "fedapp.clients"  # ConfigRecord of a packed message: the clients' partition ids and message type
CLIENT_ERRORS = "fedapp.client-errors"  # ConfigRecord of a packed reply: client index -> why it failed
PARTITION_IDS = "partition-ids"
MESSAGE_TYPE = "message-type"
PACKED_ACTION = "clients"
SEPARATOR = "/"
AUTO = 0

Send = Callable[[Grid, list[Message], float], list["Message | None"]]
ClientAppCall = Callable[[Message, Context], Message]


def clients_per_node(setting: int, num_nodes: int, cpus: int) -> int:
    """K for `clients-per-node = setting`: itself, or for `AUTO` about one host (one message) per CPU."""
    if setting != AUTO:
        return setting
    return max(1, math.ceil(num_nodes / max(1, cpus)))


def host_partition(partition_id: int, per_node: int) -> int:
    """The partition whose SuperNode hosts client `partition_id`: the first of its block of `per_node`."""
    return partition_id - partition_id % per_node


def client_key(index: int, key: str) -> str:
    """Where record `key` of the `index`-th client goes in a packed message or reply."""
    return f"{index}{SEPARATOR}{key}"


def split_clients(content: RecordDict, count: int) -> list[RecordDict]:
    """The `count` clients' own records in a packed `content` (the inverse of `client_key`)."""
    parts = [RecordDict() for _ in range(count)]
    for key, record in content.items():
        index, separator, name = key.partition(SEPARATOR)
        if separator and index.isdigit() and int(index) < count:
            parts[int(index)][name] = record
    return parts


def pack(messages: list[Message], partition_ids: list[int], host_node_id: int) -> Message:
    """One message to `host_node_id` carrying `messages` (one per client, all of one type) for its clients.

    Records that several messages share (the global arrays, the round's config) stay
    one object, so the engine and `broadcast.py` move them once.
    """
    message_type = messages[0].metadata.message_type
    listing = ConfigRecord({PARTITION_IDS: list(partition_ids), MESSAGE_TYPE: message_type})
    content = RecordDict({CLIENTS: listing})
    for index, message in enumerate(messages):
        for key, record in message.content.items():
            content[client_key(index, key)] = record
    category = message_type.split(".")[0]
    return Message(content, dst_node_id=host_node_id, message_type=f"{category}.{PACKED_ACTION}")


def unpack_answer(answer: Message | None, messages: list[Message]) -> list[Message | None]:
    """Each client's reply to its message in `messages`, from the host's `answer` to their packed message.

    No answer (timeout) or an error from the host fails every client it carried; a
    client's own error fails that client only.
    """
    if answer is None:
        return [None] * len(messages)
    if answer.has_error():
        return [Message(answer.error, reply_to=message) for message in messages]
    errors = answer.content.config_records.get(CLIENT_ERRORS, ConfigRecord())
    contents = split_clients(answer.content, len(messages))
    return [
        Message(Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, str(errors[str(index)])), reply_to=message)
        if str(index) in errors
        else Message(content, reply_to=message)
        for index, (message, content) in enumerate(zip(messages, contents, strict=True))
    ]


@dataclass
class ClientPacker:
    """The server's side: packs an exchange's messages by host, sends them, and unpacks per client.

    `partition_nodes` lists the online simulated nodes (partition id -> node id, from the
    `NodeDirectory`); K is fixed at the first exchange, so a client's host, which keeps
    its `Context.state`, never changes during a run.
    """

    partition_nodes: Callable[[], dict[int, int]]
    setting: int
    cpus: int = os.cpu_count() or 1
    per_node: int = 0
    messages_sent: int = 0  # in the last exchange

    def exchange(self, send: Send, grid: Grid, messages: list[Message], timeout: float) -> list[Message | None]:
        """Send `messages` packed (through `send`) and return each one's answer in their order (None: none in time)."""
        groups = self.groups(messages)
        packed = [
            pack([messages[i] for i in indices], [partition for partition, _ in members], host)
            for (host, _), (indices, members) in groups.items()
        ]
        self.messages_sent = len(packed)
        answers: list[Message | None] = [None] * len(messages)
        for (indices, _), answer in zip(groups.values(), send(grid, packed, timeout), strict=True):
            for index, client_answer in zip(
                indices, unpack_answer(answer, [messages[i] for i in indices]), strict=True
            ):
                answers[index] = client_answer
        return answers

    def groups(self, messages: list[Message]) -> dict[tuple[int, str], tuple[list[int], list[tuple[int, int]]]]:
        """The messages by (host node id, message type): their indices and their (partition id, node id)."""
        nodes = self.partition_nodes()
        if not self.per_node:
            self.per_node = clients_per_node(self.setting, len(nodes), self.cpus)
            log(INFO, "[fedapp] logical clients: %d per simulated SuperNode", self.per_node)
        partitions = {node_id: partition for partition, node_id in nodes.items()}
        groups: dict[tuple[int, str], tuple[list[int], list[tuple[int, int]]]] = defaultdict(lambda: ([], []))
        for index, message in enumerate(messages):
            node_id = message.metadata.dst_node_id
            partition = partitions.get(node_id, -1)
            host = nodes.get(host_partition(partition, self.per_node), node_id) if partition >= 0 else node_id
            indices, members = groups[(host, message.metadata.message_type)]
            indices.append(index)
            members.append((partition, node_id))
        return groups


def state_prefix(partition_id: int) -> str:
    """Where a host keeps client `partition_id`'s `Context.state` entries in its own."""
    return f"client-{partition_id:05d}{SEPARATOR}"


def client_context(context: Context, partition_id: int) -> Context:
    """Client `partition_id`'s `Context` on its host: its partition in the node config, its own state."""
    prefix = state_prefix(partition_id)
    state = RecordDict(
        {key.removeprefix(prefix): record for key, record in context.state.items() if key.startswith(prefix)}
    )
    return Context(
        run_id=context.run_id,
        node_id=context.node_id,
        node_config={**context.node_config, "partition-id": partition_id},
        state=state,
        run_config=context.run_config,
    )


def keep_state(context: Context, partition_id: int, state: RecordDict) -> None:
    """Store client `partition_id`'s new `Context.state` in its host's, replacing what it held before."""
    prefix = state_prefix(partition_id)
    for key in [key for key in context.state if key.startswith(prefix)]:
        del context.state[key]
    for key, record in state.items():
        context.state[prefix + key] = record


def serve_clients(app: ClientAppCall, message: Message, context: Context) -> Message:
    """The host's side: run `app` on each client's message in that client's context; one reply for all.

    A client whose handler raises or answers with an error is listed under
    `CLIENT_ERRORS` (its state is not kept), the others' records go back under their index.
    """
    listing = message.content[CLIENTS]
    partition_ids = [int(value) for value in listing[PARTITION_IDS]]  # type: ignore[union-attr]
    reply = RecordDict()
    errors: dict[str, str] = {}
    for index, content in enumerate(split_clients(message.content, len(partition_ids))):
        metadata = copy.copy(message.metadata)
        metadata.message_type = str(listing[MESSAGE_TYPE])
        own_context = client_context(context, partition_ids[index])
        try:
            answer = app(Message(content=content, metadata=metadata), own_context)
        except Exception as error:  # noqa: BLE001 (one client's failure is reported, as the engine reports a node's)
            log(ERROR, "[fedapp] client partition %d raised: %s", partition_ids[index], traceback.format_exc())
            errors[str(index)] = f"{type(error)}:<'{error}'>"
            continue
        if answer.has_error():
            errors[str(index)] = answer.error.reason
            continue
        for key, record in answer.content.items():
            reply[client_key(index, key)] = record
        keep_state(context, partition_ids[index], own_context.state)
    if errors:
        reply[CLIENT_ERRORS] = ConfigRecord(errors)
    return Message(reply, reply_to=message)
