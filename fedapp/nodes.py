"""Stable identities for connected nodes, so sampling and ordering are reproducible.

Flower gives nodes random 64-bit ids that change from run to run (in simulation
too), and the ServerApp may start before every simulated node has registered. The
`NodeDirectory` waits for the federation to settle, asks each new node once who it
is (a `query` message answered with its partition or name), and lists online nodes
in the order of those stable keys. `OrderedGrid` hands that list to the strategy in
place of Flower's, so a seeded sampler picks the same partitions in every run, and
pulls replies more often than Flower's deployment `Grid` does.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterable
from dataclasses import dataclass
from logging import INFO, WARNING

from flwr.app import ConfigRecord, Message, RecordDict
from flwr.common import log
from flwr.serverapp import Grid
from flwr.superlink.grid import InMemoryGrid, http_grid

from fedapp.packing import packed_for_push, unpack_content
from fedapp.protocol import DESCRIBE, NODE, NODE_KEY, NODE_MODEL, NODE_PARTITION_ID, NODE_PARTITIONS
from strategies.protocol import CONFIG

POLL_SECONDS = 0.25
FIRST_POLL_SECONDS = 0.02
PULL_FIRST_RETRY = 0.02
PULL_RETRY_CAP = 1.0
IN_MEMORY_POLL_SECONDS = 0.01
DESCRIBE_BATCH = 100


@dataclass(frozen=True)
class NodeInfo:
    """What a node told the server about itself."""

    key: str
    model: str
    partitions: int
    partition_id: int = -1  # which share of the run's dataset it holds (-1: its own data)


class NodeDirectory:
    """Connected nodes with their stable keys, learned by a describe query."""

    def __init__(self, grid: Grid, timeout: float) -> None:
        self._grid = grid
        self._timeout = timeout
        self._info: dict[int, NodeInfo] = {}

    def wait_for_nodes(self, minimum: int, settle_seconds: float = 1.0) -> None:
        """Block until at least `minimum` nodes are connected and their count holds still."""
        count, stable_since, last_log = -1, time.monotonic(), 0.0
        while True:
            now = time.monotonic()
            current = len(list(self._grid.get_node_ids()))
            if current != count:
                count, stable_since = current, now
            if count >= minimum and now - stable_since >= settle_seconds:
                log(INFO, "[fedapp] %d nodes connected", count)
                return
            if count < minimum and now - last_log >= 10:
                log(INFO, "[fedapp] waiting for nodes: %d connected, need %d", count, minimum)
                last_log = now
            time.sleep(POLL_SECONDS)

    def online(self) -> list[int]:
        """Ids of connected, described nodes, in the order of their stable keys."""
        connected = list(self._grid.get_node_ids())
        unknown = [node_id for node_id in connected if node_id not in self._info]
        if unknown:
            self._describe(unknown)
        known = [node_id for node_id in connected if node_id in self._info]
        return sorted(known, key=lambda node_id: (self._info[node_id].key, node_id))

    def num_partitions(self) -> list[int]:
        """The distinct `num-partitions` of the online nodes holding a share of the run's dataset.

        One value in a simulation (its number of nodes); empty when every node has its own data.
        """
        return sorted({self._info[node_id].partitions for node_id in self.online()} - {0})

    def own_data_nodes(self) -> int:
        """How many online nodes train on their own data (`data-path`): more than 0 in a deployment."""
        return sum(1 for node_id in self.online() if self._info[node_id].partitions == 0)

    def partition_nodes(self) -> dict[int, int]:
        """Online nodes holding a share of the run's dataset: partition id -> node id."""
        return {
            self._info[node_id].partition_id: node_id for node_id in self.online() if self._info[node_id].partitions
        }

    def info(self, node_id: int) -> NodeInfo:
        """What node `node_id` said about itself."""
        return self._info[node_id]

    def key(self, node_id: int) -> str | None:
        """The stable key of node `node_id`, or None if it has not described itself."""
        info = self._info.get(node_id)
        return info.key if info is not None else None

    def architecture(self, node_id: int) -> str | None:
        """The model architecture node `node_id` trains, or None if it has not described itself."""
        info = self._info.get(node_id)
        return info.model if info is not None else None

    def _describe(self, node_ids: list[int]) -> None:
        """Ask `node_ids` for their key and model, `DESCRIBE_BATCH` at a time; nodes that fail to answer stay unknown.

        Batches keep the simulation engine's queue short: it scans every queued message
        for every node, so 1,000 queries at once cost it a million checks per scan.
        """
        deadline = time.monotonic() + self._timeout  # all batches together wait at most the timeout
        for start in range(0, len(node_ids), DESCRIBE_BATCH):
            self._describe_batch(node_ids[start : start + DESCRIBE_BATCH], max(0.0, deadline - time.monotonic()))

    def _describe_batch(self, node_ids: list[int], timeout: float) -> None:
        messages = [
            Message(RecordDict({CONFIG: ConfigRecord()}), dst_node_id=node_id, message_type=DESCRIBE)
            for node_id in node_ids
        ]
        for reply in send_and_receive(self._grid, messages, timeout):
            if reply.has_error():
                log(
                    WARNING,
                    "[fedapp] node %d did not describe itself: %s",
                    reply.metadata.src_node_id,
                    reply.error.reason,
                )
                continue
            node = reply.content[NODE]
            self._info[reply.metadata.src_node_id] = NodeInfo(
                key=str(node[NODE_KEY]),
                model=str(node[NODE_MODEL]),
                partitions=int(node[NODE_PARTITIONS]),
                partition_id=int(node.get(NODE_PARTITION_ID, -1)),
            )


class OrderedGrid(Grid):
    """A `Grid` that lists only described nodes, in stable-key order; all else is delegated."""

    def __init__(self, grid: Grid, directory: NodeDirectory) -> None:
        self._grid = grid
        self._directory = directory

    def set_run(self, run) -> None:  # noqa: ANN001 (Flower's Run)
        self._grid.set_run(run)

    @property
    def run(self):  # noqa: ANN201 (Flower's Run)
        return self._grid.run

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None) -> Message:  # noqa: ANN001
        return self._grid.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        return self._directory.online()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self._grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self._grid.pull_messages(message_ids)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        return send_and_receive(self._grid, messages, timeout)


def poll_seconds(grid: Grid) -> tuple[float, float]:
    """(shortest, longest) seconds between pulls of replies from `grid`.

    A pull from the simulation's in-memory grid is a lookup in this process, so it is
    repeated after `IN_MEMORY_POLL_SECONDS`, backing off while nothing arrives (each
    pull scans the pending messages, which competes with the clients for the CPU); a
    deployment's grid pulls over the network from the SuperLink (one request per
    pull, from the one ServerApp): `FIRST_POLL_SECONDS` after a push or an arrival,
    doubling up to `POLL_SECONDS` while nothing arrives.
    """
    if isinstance(grid, InMemoryGrid):
        return IN_MEMORY_POLL_SECONDS, IN_MEMORY_POLL_SECONDS * 4
    return FIRST_POLL_SECONDS, POLL_SECONDS


def next_poll(wait: float, arrived: int, shortest: float, longest: float) -> float:
    """The wait before the next pull: the shortest right after replies arrived, else twice the last (capped)."""
    return shortest if arrived else min(wait * 2, longest)


def send_and_receive(grid: Grid, messages: Iterable[Message], timeout: float | None) -> list[Message]:
    """Push `messages`, then pull replies (`poll_seconds(grid)` apart) until all are in or `timeout` has passed.

    Flower's deployment `Grid.send_and_receive` waits 3 s between pulls, which adds up
    to 3 s to every exchange of a round; here a reply is picked up within a quarter
    second in deployment (within hundredths right after another), and within a few
    hundredths in simulation. In deployment the messages' `ArrayRecord`s travel packed
    (`packing.py`: a few objects per message instead of two per tensor) and replies
    come back with their records restored.
    """
    messages = list(messages)
    deployed = not isinstance(grid, InMemoryGrid)
    with packed_for_push(messages) if deployed else contextlib.nullcontext():
        pending = {message_id for message_id in grid.push_messages(messages) if message_id}
    deadline = None if timeout is None else time.monotonic() + timeout
    shortest, longest = poll_seconds(grid)
    wait = shortest
    replies: list[Message] = []
    while pending:
        arrived = list(grid.pull_messages(pending))
        if deployed:
            for reply in arrived:
                if reply.has_content():
                    unpack_content(reply.content)
        replies += arrived
        pending -= {reply.metadata.reply_to_message_id for reply in arrived}
        if not pending or (deadline is not None and time.monotonic() >= deadline):
            break
        wait = next_poll(wait, len(arrived), shortest, longest)
        time.sleep(wait)
    return replies


def quick_reply_pulls() -> None:
    """Make this process's deployment grid retry reply objects that are not uploaded yet after 0.02 s, not 1 s.

    A reply becomes visible on the SuperLink before its arrays have finished
    uploading; Flower's `HttpGrid.pull_messages` then pulls them with `pull_objects`,
    which retries a missing object after 1 s, doubling up to 10 s: a second added to
    most exchanges once replies are polled for quickly. This replaces that module's
    `pull_objects` (only in the ServerApp's own process) by the same function with a
    first retry after `PULL_FIRST_RETRY` s, doubling to `PULL_RETRY_CAP` s.
    `deploy/supernode.py` does the same on the nodes; `tests/unit/test_nodes.py` pins
    the Flower code this relies on.
    """
    if not isinstance(http_grid.pull_objects, functools.partial):
        http_grid.pull_objects = functools.partial(
            http_grid.pull_objects, initial_backoff=PULL_FIRST_RETRY, backoff_cap=PULL_RETRY_CAP
        )


def plain_exchange(grid: Grid, messages: list[Message], timeout: float | None) -> list[Message | None]:
    """Send `messages` and return each one's answer, in their order (None: no answer within `timeout`)."""
    replies = send_and_receive(grid, messages, timeout)
    answers = {reply.metadata.reply_to_message_id: reply for reply in replies}
    return [answers.get(message.metadata.message_id) for message in messages]
