"""The SuperNode launcher re-times exactly Flower's three waits, and notices when Flower's loop changes."""

from __future__ import annotations

import hashlib
import inspect
import time

import pytest
from flwr.supercore.inflatable import inflatable_utils
from flwr.supernode import start_client_internal as supernode_loop

from deploy import supernode
from deploy.supernode import (
    GROWTH,
    IDLE_SECONDS,
    PULL_FIRST_RETRY,
    REPLY_POLL,
    REPLY_SECONDS,
    Pacing,
    noting_arrivals,
    quick_retries,
)
from deploy.warm_executor import POLL_MAX, POLL_MIN, next_wait

# The Flower code the launcher relies on: the SuperNode's loop calls the module global
# `_pull_and_store_message` and sleeps `time.sleep(3)` when it got nothing; `_push_messages`
# waits `time.sleep(0.5)` for the reply and for its objects; message objects are pulled with
# the module global `pull_objects` (its keyword arguments set the retries), in the loop and,
# in a ClientApp task, through `pull_and_inflate_object_from_tree`. A Flower upgrade that
# changes any of them fails here: re-read them, check deploy/supernode.py and
# deploy/warm_executor.py still hold, then update the digests.
PINNED = {
    supernode_loop.start_client_internal: "9e89a6eb68fbec6821e817cd2c09f7894fc7b0f5725c2365b19a7122307f11f3",
    supernode_loop._push_messages: "00bb86faffdec114db87e7f716af2acd901d12284e44f51f5c2a84704db05f64",
    supernode_loop._pull_and_store_message: "eaf5d0e36dc34e4cf46a490511d077ac55cc8edbbcdbe938c1f6dbcb758628be",
    inflatable_utils.pull_and_inflate_object_from_tree: (
        "139811483a15e4a6c1f8523614c12f28dd3049194e5713816be0931387adb1cf"
    ),
    inflatable_utils.pull_objects: "31bb2de46b450e6acfadb7a8bb15e3f2074bb112199826a40a5eaa648bad5b2b",
}


class _Clock:
    """A `time` module stand-in that records the sleeps asked of it."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    def monotonic(self) -> float:
        return 42.0


def test_idle_waits_start_short_after_a_message_and_grow_to_the_maximum() -> None:
    clock = _Clock()
    pacing = Pacing(0.05, 0.2, clock)  # type: ignore[arg-type]
    for _ in range(5):
        pacing.sleep(IDLE_SECONDS)
    pacing.active()
    pacing.sleep(IDLE_SECONDS)
    expected = [0.05, 0.05 * GROWTH, 0.05 * GROWTH**2, 0.05 * GROWTH**3, 0.05 * GROWTH**4]
    assert clock.slept == pytest.approx([min(wait, 0.2) for wait in expected] + [0.05])


def test_reply_waits_are_short_and_other_sleeps_and_names_pass_through() -> None:
    clock = _Clock()
    pacing = Pacing(0.05, 3.0, clock)  # type: ignore[arg-type]
    pacing.sleep(REPLY_SECONDS)
    pacing.sleep(7)
    assert clock.slept == [REPLY_POLL, 7] and pacing.monotonic() == 42.0


def test_a_pulled_message_resets_the_idle_wait() -> None:
    pacing = Pacing(0.05, 3.0, _Clock())  # type: ignore[arg-type]
    pacing.wait = 3.0
    results = iter([None, 17])
    pull = noting_arrivals(lambda **_: next(results), pacing)
    assert pull(state=None) is None and pacing.wait == 3.0
    assert pull(state=None) == 17 and pacing.wait == 0.05


def test_install_replaces_the_loops_time_pull_and_object_pulls_in_that_module_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("time", "_pull_and_store_message", "pull_objects"):
        monkeypatch.setattr(supernode_loop, name, getattr(supernode_loop, name))
    pacing = supernode.install(0.05, 3.0)
    assert supernode_loop.time is pacing and time.sleep is not pacing.sleep
    assert supernode_loop._pull_and_store_message.__name__ == "pull_and_note"
    assert supernode_loop.pull_objects.keywords["initial_backoff"] == PULL_FIRST_RETRY
    assert inflatable_utils.pull_objects is not supernode_loop.pull_objects


def test_a_missing_object_is_asked_for_again_within_hundredths_of_a_second() -> None:
    calls = []

    def pull(object_id: str) -> bytes:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise inflatable_utils.ObjectUnavailableError(object_id)
        return b"content"

    started = time.monotonic()
    assert quick_retries(inflatable_utils.pull_objects)(["id"], pull) == {"id": b"content"}
    assert len(calls) == 3 and time.monotonic() - started < 0.5  # Flower's own first retry alone takes ~1 s


def test_the_executor_polls_fast_after_a_task_and_settles_at_its_maximum() -> None:
    waits = [POLL_MIN]
    for _ in range(8):
        waits.append(next_wait(waits[-1]))
    assert waits[1] == pytest.approx(POLL_MIN * 1.5) and waits[-1] == POLL_MAX


def test_the_flower_loop_waits_where_the_launcher_expects() -> None:
    assert supernode_loop.time is time  # a module global the launcher can replace
    source = inspect.getsource(supernode_loop)
    assert source.count("time.sleep(") == 3
    assert source.count("time.sleep(3)") == 1 and source.count("time.sleep(0.5)") == 2
    assert "run_id = _pull_and_store_message(" in inspect.getsource(supernode_loop.start_client_internal)


@pytest.mark.parametrize("function", list(PINNED), ids=lambda f: f.__name__)
def test_the_flower_code_the_launcher_relies_on_is_unchanged(function: object) -> None:
    source = inspect.getsource(function)  # type: ignore[arg-type]
    assert hashlib.sha256(source.encode()).hexdigest() == PINNED[function], (
        f"{function.__name__} changed in this Flower version: re-check deploy/supernode.py against it"
    )
