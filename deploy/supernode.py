"""`python -m deploy.supernode [--poll-min S] [--poll-max S] [--doorbell PIPE] ARGS`: Flower's adaptive SuperNode.

Flower 1.42's SuperNode loop (`flwr/supernode/start_client_internal.py`) pulls the
SuperLink for a message and, when none is waiting, sleeps a hard-coded 3 s
(`time.sleep(3)`); after handing a message to its ClientApp it checks for the reply
every 0.5 s, and for the reply's objects every 0.5 s (`time.sleep(0.5)`, twice). No
flag or environment variable sets them, and together they put 0-3 s of waiting plus
up to a second on every exchange of every round.

This entry point runs `flower-supernode` unchanged (ARGS are its arguments) after
replacing three names in that one module, before the loop starts:

- its `time` by a `Pacing` whose `sleep` turns the idle 3 s into a wait that starts at
  `--poll-min` after the node last received a message and grows 1.25 times with every
  empty poll, up to `--poll-max` (Flower's 3 s by default), and turns the 0.5 s reply
  and object waits (checks of the node's own state, no network) into `REPLY_POLL`;
- `_pull_and_store_message` by a wrapper that tells the `Pacing` when a message arrived
  and, with `--doorbell`, rings the warm executor's doorbell (`deploy/doorbell.py`):
  the message's task exists and its objects are stored, so the executor asks for it
  at once instead of polling the node's Runtime API ten times a second;
- `pull_objects` by `quick_retries(pull_objects)`: a message's objects that are not
  there yet (still being uploaded) are asked for again after 0.02 s, doubling up to
  1 s, where Flower waits 1 s, doubling up to 10 s. The warm executor does the same in
  each ClientApp task, which pulls its message from the SuperNode as soon as the task
  exists, often before the SuperNode has stored the message's objects.

Load on the SuperLink: per node, about log_1.25(gap / (4 poll-min) + 1) + 1 polls
while it waits `gap` seconds for its next message (up to the ~12 s it takes to grow
to 3 s), then one per `poll-max`, against Flower's one per 3 s
(docs/performance-cohorts.md has the figures).
`tests/unit/test_supernode_launcher.py` pins the Flower code this relies on, so a
Flower upgrade that changes it fails there. Started by `deploy/start-supernode.sh`.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from flwr.supernode import start_client_internal as supernode_loop

from deploy.doorbell import ring

IDLE_SECONDS = 3  # Flower's `time.sleep(3)` when no message was pulled
REPLY_SECONDS = 0.5  # Flower's `time.sleep(0.5)` while waiting for a reply and its objects
REPLY_POLL = 0.01
GROWTH = 1.25
PULL_FIRST_RETRY = 0.02
PULL_RETRY_CAP = 1.0
POLL_MIN = 0.1
POLL_MAX = 3.0


class Pacing:
    """Stands in for the SuperNode loop's `time` module: the same functions, with its waits re-timed."""

    def __init__(self, poll_min: float, poll_max: float, clock: ModuleType = time) -> None:
        self.poll_min = poll_min
        self.poll_max = poll_max
        self.wait = poll_min
        self._clock = clock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._clock, name)

    def active(self) -> None:
        """A message arrived: poll soon again (the next one of a round follows shortly)."""
        self.wait = self.poll_min

    def sleep(self, seconds: float) -> None:
        """Flower's waits re-timed: the idle wait adaptive, the reply waits short; any other as asked."""
        if seconds == IDLE_SECONDS:
            self._clock.sleep(self.wait)
            self.wait = min(self.wait * GROWTH, self.poll_max)
        elif seconds == REPLY_SECONDS:
            self._clock.sleep(REPLY_POLL)
        else:
            self._clock.sleep(seconds)


def noting_arrivals(
    pull: Callable[..., int | None], pacing: Pacing, doorbell: Path | None = None
) -> Callable[..., int | None]:
    """`pull` (Flower's `_pull_and_store_message`), telling `pacing` (and ringing `doorbell`) when it returns a run.

    Flower's function has created the message's task and stored its objects by the
    time it returns, so the executor woken here finds both.
    """

    def pull_and_note(*args: Any, **kwargs: Any) -> int | None:
        run_id = pull(*args, **kwargs)
        if run_id is not None:
            pacing.active()
            if doorbell is not None:
                ring(doorbell)
        return run_id

    return pull_and_note


def quick_retries(pull_objects: Callable[..., dict[str, bytes]]) -> Callable[..., dict[str, bytes]]:
    """Flower's `pull_objects`, retrying a missing object after `PULL_FIRST_RETRY` s, doubling to `PULL_RETRY_CAP`."""
    return functools.partial(pull_objects, initial_backoff=PULL_FIRST_RETRY, backoff_cap=PULL_RETRY_CAP)


def install(poll_min: float, poll_max: float, doorbell: Path | None = None) -> Pacing:
    """Re-time the SuperNode loop of this process (see the module docstring); return its `Pacing`."""
    pacing = Pacing(poll_min, poll_max)
    supernode_loop.time = pacing  # type: ignore[assignment]
    supernode_loop._pull_and_store_message = noting_arrivals(supernode_loop._pull_and_store_message, pacing, doorbell)
    supernode_loop.pull_objects = quick_retries(supernode_loop.pull_objects)
    return pacing


def _seconds(text: str) -> float:
    value = float(text)
    if not 0.001 <= value <= 60:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; allowed: seconds from 0.001 to 60")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.supernode", description=__doc__.split("\n\n")[0], allow_abbrev=False
    )
    parser.add_argument(
        "--poll-min", type=_seconds, default=POLL_MIN, help=f"first wait after a message (default {POLL_MIN})"
    )
    parser.add_argument(
        "--poll-max", type=_seconds, default=POLL_MAX, help=f"longest wait between polls (default {POLL_MAX})"
    )
    parser.add_argument(
        "--doorbell", type=Path, help="named pipe of this node's warm executor, rung when a message arrives"
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    """Parse our options, re-time the loop, and hand every other argument to `flower-supernode`."""
    options, supernode_args = _parser().parse_known_args(argv)
    if options.poll_min > options.poll_max:
        _parser().error(f"--poll-min {options.poll_min} exceeds --poll-max {options.poll_max}")
    install(options.poll_min, options.poll_max, options.doorbell)
    from flwr.supernode.cli import flower_supernode  # noqa: PLC0415 (after the loop is re-timed)

    sys.argv = ["flower-supernode", *supernode_args]
    flower_supernode()


if __name__ == "__main__":
    main()
