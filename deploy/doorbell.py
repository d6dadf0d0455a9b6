"""A doorbell between a SuperNode and its warm executor: "a task is waiting" without polling.

The warm executor learns of a new ClientApp task by asking the SuperNode's Runtime
API (`AcquireTask`). Polled ten times a second, that is one HTTP request every 0.1 s
per node whether or not there is work: at 10 nodes on one machine, about 400 requests
a round that each cost both processes CPU (docs/performance-cohorts.md). The
SuperNode launcher knows the moment a message (and so its task) is stored, so it
rings; the executor waits for the ring and asks only then, with a slow poll left as a
safety net for a ring that is missed (an executor restarted between the two).

The bell is a named pipe in a private folder made by `deploy/start-supernode.sh`. A
ring writes one byte without blocking: no reader, or a full pipe (rings not yet
heard), loses nothing that matters, since one ring already wakes the executor.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
from pathlib import Path


def ring(path: Path) -> None:
    """Wake the executor listening on `path`; do nothing when no one listens or a ring is already pending."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as error:
        if error.errno in (errno.ENXIO, errno.ENOENT):  # no listener (yet, or any more)
            return
        raise
    try:
        os.write(descriptor, b"\x01")
    except BlockingIOError:  # the pipe is full of rings not yet heard
        pass
    finally:
        os.close(descriptor)


class Doorbell:
    """The listening end of the bell at `path` (a named pipe, created here if absent)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():  # started by hand; start-supernode.sh makes it before either process starts
            os.mkfifo(path, 0o600)
        # Read and write: the executor's own writer keeps the pipe from reporting end-of-file
        # (readable forever) whenever the SuperNode's last ring has closed its end.
        self._descriptor = os.open(path, os.O_RDWR | os.O_NONBLOCK)

    def wait(self, timeout: float) -> bool:
        """Block until a ring or `timeout` seconds; True when it rang (every pending ring is consumed)."""
        readable, _, _ = select.select([self._descriptor], [], [], timeout)
        if not readable:
            return False
        while True:
            try:
                if not os.read(self._descriptor, 4096):
                    return True
            except BlockingIOError:
                return True

    def close(self) -> None:
        """Stop listening and remove the pipe and, when empty, its folder."""
        os.close(self._descriptor)
        self.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # the folder holds something else: leave it
            self.path.parent.rmdir()
