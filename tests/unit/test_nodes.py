"""How often the server pulls replies: fast from the simulation's in-memory grid, backing off while idle."""

from __future__ import annotations

import functools
import hashlib
import inspect

import pytest
from flwr.superlink.grid import InMemoryGrid, http_grid

from fedapp.nodes import (
    FIRST_POLL_SECONDS,
    IN_MEMORY_POLL_SECONDS,
    POLL_SECONDS,
    PULL_FIRST_RETRY,
    next_poll,
    poll_seconds,
    quick_reply_pulls,
)


def test_the_in_memory_grid_is_pulled_sooner_than_a_deployment_grid() -> None:
    in_memory = InMemoryGrid.__new__(InMemoryGrid)  # the grid type decides; no link state is needed
    shortest, longest = poll_seconds(in_memory)
    assert shortest == IN_MEMORY_POLL_SECONDS and shortest < longest < POLL_SECONDS
    deployment = http_grid.HttpGrid.__new__(http_grid.HttpGrid)
    assert poll_seconds(deployment) == (FIRST_POLL_SECONDS, POLL_SECONDS)


def test_a_deployment_servers_reply_pulls_retry_missing_objects_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_grid, "pull_objects", http_grid.pull_objects)
    quick_reply_pulls()
    quick_reply_pulls()  # once is enough: a second call changes nothing
    assert isinstance(http_grid.pull_objects, functools.partial)
    assert not isinstance(http_grid.pull_objects.func, functools.partial)
    assert http_grid.pull_objects.keywords["initial_backoff"] == PULL_FIRST_RETRY
    # The Flower code this relies on: `HttpGrid.pull_messages` pulls reply objects through the
    # module global `pull_objects` without retry arguments of its own. If Flower changes it,
    # re-check `quick_reply_pulls`, then update the digest.
    source = inspect.getsource(http_grid.HttpGrid.pull_messages)
    assert hashlib.sha256(source.encode()).hexdigest() == (
        "67a5266a5a2ed51557437a15ef4c8844f46576bc5bb6b0753d2a2f6230a3aa83"
    )


def test_waits_double_while_nothing_arrives_and_reset_when_replies_do() -> None:
    waits, wait = [], 0.01
    for arrived in (0, 0, 0, 0, 3, 0):
        wait = next_poll(wait, arrived, 0.01, 0.04)
        waits.append(wait)
    assert waits == [0.02, 0.04, 0.04, 0.04, 0.01, 0.02]
