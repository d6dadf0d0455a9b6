"""The simulation engine's dispatch index: same messages as Flower's scan, none of its cost for idle nodes."""

from __future__ import annotations

import hashlib
import inspect
import secrets
from dataclasses import replace

import pytest
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.common.constant import HEARTBEAT_INTERVAL_INF, NOOP_ACCOUNT_NAME, NOOP_FLWR_AID
from flwr.proto.task_pb2 import Task  # pylint: disable=no-name-in-module
from flwr.server.superlink.fleet.vce import vce_api
from flwr.server.superlink.linkstate import InMemoryLinkState, LinkStateFactory
from flwr.server.superlink.linkstate.in_memory_linkstate import RunRecord
from flwr.supercore.constant import FLWR_IN_MEMORY_DB_NAME, NOOP_FEDERATION_ID
from flwr.supercore.object_store import ObjectStoreFactory
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity
from flwr.superlink.federation import NoOpFederationManager
from flwr.superlink.grid import InMemoryGrid

from fedapp.dispatch_index import DispatchIndex, index_simulation_state

RUN_ID, TASK_ID = 1, 7

# Flower code the index relies on: the engine asks every node for its next message through
# `get_message_ins(node_id=..., limit=1)`, and the in-memory state stores and hands out
# messages with these two methods. A Flower upgrade that changes any of them fails here:
# re-read them, check the index still gives the same answers, then update the digests.
PINNED = {
    vce_api.add_messages_to_queue: "953f4bd41a931a7779a4a670ab17b633f6e20b08a0128535328674466419777a",
    InMemoryLinkState.get_message_ins: "6547c8dcbc62e12f5b2aa5c69f4de8c7c7072c10d6c0876512cf37197d941056",
    InMemoryLinkState.store_message_ins: "a2b78afac51dc4a23d236ccf8d02958c8d0532aac179cd9ad9b1a0d939eecbea",
}


@pytest.fixture
def identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages sent as the ServerApp sends them: from the SuperLink's node id, in the test run."""
    monkeypatch.setattr(TaskIdentity, "_run_id", RUN_ID)
    monkeypatch.setattr(TaskIdentity, "_node_id", 1)
    monkeypatch.setattr(TaskIdentity, "_task_id", TASK_ID)


def _simulation_grid(nodes: int) -> tuple[InMemoryGrid, list[int]]:
    """A simulation's in-memory grid with a run and `nodes` registered nodes, as `flwr-simulation` sets it up."""
    factory = LinkStateFactory(FLWR_IN_MEMORY_DB_NAME, NoOpFederationManager(), ObjectStoreFactory())
    state = factory.state()
    run = replace(Run.create_empty(run_id=RUN_ID), primary_task_id=TASK_ID, federation_id=NOOP_FEDERATION_ID)
    state.run_ids[RUN_ID] = RunRecord(run=run)
    state.task_store[TASK_ID] = Task(task_id=TASK_ID, run_id=RUN_ID)
    grid = InMemoryGrid(factory)
    grid.set_run(run)
    node_ids = []
    for _ in range(nodes):
        node_id = state.create_node(
            NOOP_FLWR_AID, NOOP_ACCOUNT_NAME, secrets.token_bytes(32), heartbeat_interval=HEARTBEAT_INTERVAL_INF
        )
        state.acknowledge_node_heartbeat(node_id=node_id, heartbeat_interval=HEARTBEAT_INTERVAL_INF)
        node_ids.append(node_id)
    return grid, node_ids


def _push(grid: InMemoryGrid, node_ids: list[int]) -> list[str]:
    messages = [Message(RecordDict({"c": ConfigRecord()}), dst_node_id=node, message_type="train") for node in node_ids]
    return list(grid.push_messages(messages))


def _scan(state: InMemoryLinkState, node_ids: list[int]) -> dict[int, list[str]]:
    """One pass of the engine's dispatch loop: each node's next message ids."""
    return {node: [m.metadata.message_id for m in state.get_message_ins(node_id=node, limit=1)] for node in node_ids}


def _dispatch(indexed: bool) -> list[list[tuple[int, int]]]:
    """Three engine scans after pushes to nodes 0, 2, 2, 5 of 6, as (node, push) positions per scan."""
    grid, nodes = _simulation_grid(6)
    if indexed:
        assert isinstance(index_simulation_state(grid), DispatchIndex)
    pushed = _push(grid, [nodes[0], nodes[2], nodes[2], nodes[5]])
    scans = [_scan(grid.state, nodes) for _ in range(3)]
    return [
        [(nodes.index(node), pushed.index(message_id)) for node, ids in scan.items() for message_id in ids]
        for scan in scans
    ]


def test_the_index_hands_out_what_flowers_scan_does_in_the_same_order(identity: None) -> None:
    expected = [[(0, 0), (2, 1), (5, 3)], [(2, 2)], []]
    assert _dispatch(indexed=False) == expected
    assert _dispatch(indexed=True) == expected


def test_a_node_without_undelivered_messages_never_reaches_flowers_scan(identity: None) -> None:
    grid, nodes = _simulation_grid(50)
    index = index_simulation_state(grid)
    assert index is not None
    calls = []
    original = index._get_message_ins
    index._get_message_ins = lambda **kwargs: calls.append(kwargs["node_id"]) or original(**kwargs)
    _push(grid, nodes[:3])
    _scan(grid.state, nodes)
    assert sorted(calls) == sorted(nodes[:3])
    calls.clear()
    _scan(grid.state, nodes)
    assert calls == []


def test_messages_deleted_before_delivery_leave_no_stale_count(identity: None) -> None:
    grid, nodes = _simulation_grid(2)
    index = index_simulation_state(grid)
    assert index is not None
    [message_id] = _push(grid, [nodes[0]])
    grid.state.delete_messages({message_id})
    assert _scan(grid.state, nodes) == {nodes[0]: [], nodes[1]: []}
    assert not index.undelivered.get(nodes[0])


def test_only_a_simulation_grid_is_indexed() -> None:
    assert index_simulation_state(object()) is None


@pytest.mark.parametrize("function", list(PINNED), ids=lambda f: f.__qualname__)
def test_the_flower_code_the_index_relies_on_is_unchanged(function: object) -> None:
    source = inspect.getsource(function)  # type: ignore[arg-type]
    assert hashlib.sha256(source.encode()).hexdigest() == PINNED[function], (
        f"{function.__qualname__} changed in this Flower version: re-check fedapp/dispatch_index.py against it"
    )
