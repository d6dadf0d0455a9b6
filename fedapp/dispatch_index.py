"""Lets Flower's simulation engine find a node's messages without scanning all of them.

The engine (`flwr/server/superlink/fleet/vce/vce_api.py`, `add_messages_to_queue`)
asks the in-memory state for every registered node's next message every 0.1 s, and
`InMemoryLinkState.get_message_ins` answers by checking every stored message:
registered nodes x stored messages checks per scan. Stored messages stay until their
replies are pulled, so a round of 100 clients costs 100 x 100 checks per scan at 100
nodes, and 10,000 x 100 (seconds of CPU, every scan) at 10,000 nodes; the scans
compete with the clients for the cores.

`DispatchIndex` counts, per node, the messages stored for it and not yet handed out.
For a node with none, `get_message_ins` answers `[]` at once; for the others it
calls Flower's own method, which still does every check it did (expiry, federation,
delivery marks). The state's two methods are replaced on that one state object, in
the simulation process, by the ServerApp (`simulation-fast-path`); nothing else in
Flower changes. `tests/unit/test_dispatch_index.py` pins the Flower code this relies on.
"""

from __future__ import annotations

import threading
from collections import Counter

from flwr.app import Message
from flwr.server.superlink.linkstate import InMemoryLinkState
from flwr.superlink.grid import InMemoryGrid


class DispatchIndex:
    """Undelivered messages per destination node, kept beside one `InMemoryLinkState`."""

    def __init__(self, state: InMemoryLinkState) -> None:
        self._store_message_ins = state.store_message_ins
        self._get_message_ins = state.get_message_ins
        self._lock = threading.Lock()
        with self._lock:
            self.undelivered: Counter[int] = Counter(
                message.metadata.dst_node_id
                for message in list(state.message_ins_store.values())
                if message.metadata.delivered_at == ""
            )

    @classmethod
    def install(cls, state: InMemoryLinkState) -> DispatchIndex:
        """Index `state`: its `store_message_ins` and `get_message_ins` go through the index from now on."""
        index = cls(state)
        state.store_message_ins = index.store_message_ins  # type: ignore[method-assign]
        state.get_message_ins = index.get_message_ins  # type: ignore[method-assign]
        return index

    def store_message_ins(self, message: Message) -> str | None:
        """Flower's `store_message_ins`, counting the message for its destination when stored."""
        with self._lock:
            message_id = self._store_message_ins(message)
            if message_id is not None:
                self.undelivered[message.metadata.dst_node_id] += 1
            return message_id

    def get_message_ins(self, node_id: int, limit: int | None, *, run_id: int | None = None) -> list[Message]:
        """Flower's `get_message_ins` for a node with undelivered messages; `[]` at once for any other."""
        if not self.undelivered.get(node_id):
            return []
        with self._lock:
            messages = self._get_message_ins(node_id=node_id, limit=limit, run_id=run_id)
            if limit is None or len(messages) < limit:
                self.undelivered.pop(node_id, None)  # none left (some may have expired unseen)
            else:
                self.undelivered[node_id] = max(0, self.undelivered[node_id] - len(messages))
            return messages


def index_simulation_state(grid: object) -> DispatchIndex | None:
    """Install a `DispatchIndex` on the state of a simulation's in-memory grid; None for any other grid."""
    if not isinstance(grid, InMemoryGrid) or not isinstance(grid.state, InMemoryLinkState):
        return None
    return DispatchIndex.install(grid.state)
