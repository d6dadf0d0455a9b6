"""How often the server pulls replies: fast from the simulation's in-memory grid, backing off while idle."""

from __future__ import annotations

from flwr.superlink.grid import InMemoryGrid

from fedapp.nodes import IN_MEMORY_POLL_SECONDS, POLL_SECONDS, next_poll, poll_seconds


def test_the_in_memory_grid_is_pulled_sooner_than_a_deployment_grid() -> None:
    in_memory = InMemoryGrid.__new__(InMemoryGrid)  # the grid type decides; no link state is needed
    shortest, longest = poll_seconds(in_memory)
    assert shortest == IN_MEMORY_POLL_SECONDS and shortest < longest < POLL_SECONDS


def test_waits_double_while_nothing_arrives_and_reset_when_replies_do() -> None:
    waits, wait = [], 0.01
    for arrived in (0, 0, 0, 0, 3, 0):
        wait = next_poll(wait, arrived, 0.01, 0.04)
        waits.append(wait)
    assert waits == [0.02, 0.04, 0.04, 0.04, 0.01, 0.02]
