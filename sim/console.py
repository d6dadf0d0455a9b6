"""The progress lines `python -m sim` and `python -m deploy` print, each under its own program's prefix.

The simulation helpers (submitting runs, the local SuperLink) serve both commands, so
the prefix is the command that is running (`[sim]` unless `python -m deploy` says
otherwise with `speaking_as`), not the module that prints.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

PROGRAM: ContextVar[str] = ContextVar("program", default="sim")


def echo(text: str) -> None:
    """Print a progress line of the running command: `[sim] text` or `[deploy] text`."""
    print(f"[{PROGRAM.get()}] {text}", file=sys.stdout, flush=True)


@contextmanager
def speaking_as(program: str) -> Iterator[None]:
    """Prefix the progress lines printed inside this block with `[program]`."""
    token = PROGRAM.set(program)
    try:
        yield
    finally:
        PROGRAM.reset(token)
