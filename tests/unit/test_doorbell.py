"""The SuperNode's doorbell wakes its warm executor at once, costs nothing when nobody listens, and never spins."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from deploy.doorbell import Doorbell, ring
from deploy.supernode import Pacing, noting_arrivals
from tests.helpers import APP_DIR


def test_a_ring_wakes_the_listener_at_once_and_one_wait_hears_every_pending_ring(tmp_path: Path) -> None:
    bell = Doorbell(tmp_path / "bell")
    try:
        started = time.monotonic()
        assert not bell.wait(0.05) and time.monotonic() - started >= 0.05
        for _ in range(3):
            ring(bell.path)
        assert bell.wait(5)
        started = time.monotonic()
        assert not bell.wait(0.1), "the pending rings were all consumed"
        assert time.monotonic() - started >= 0.1, "a ringer's closed end must not make the pipe readable forever"
    finally:
        bell.close()


def test_a_ring_from_another_thread_ends_a_long_wait_early(tmp_path: Path) -> None:
    bell = Doorbell(tmp_path / "bell")
    try:
        threading.Timer(0.05, ring, args=(bell.path,)).start()
        started = time.monotonic()
        assert bell.wait(10) and time.monotonic() - started < 5
    finally:
        bell.close()


def test_ringing_without_a_listener_does_nothing_and_close_removes_the_pipe(tmp_path: Path) -> None:
    ring(tmp_path / "nobody")  # no pipe at all
    folder = tmp_path / "node"
    folder.mkdir()
    bell = Doorbell(folder / "bell")
    bell.close()
    assert not folder.exists()
    ring(folder / "bell")


def test_the_supernode_rings_when_a_message_arrived_and_only_then(tmp_path: Path) -> None:
    bell = Doorbell(tmp_path / "bell")
    try:
        results = iter([None, 17])
        pull = noting_arrivals(lambda **_: next(results), Pacing(0.05, 3.0), bell.path)
        assert pull(state=None) is None and not bell.wait(0)
        assert pull(state=None) == 17 and bell.wait(0)
    finally:
        bell.close()


def _loading_torch(pid: int) -> bool:
    """Whether process `pid` has torch's library mapped (Linux: /proc/PID/maps), that is, torch's import has begun."""
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_an_executor_stopped_while_it_starts_still_removes_its_doorbell(tmp_path: Path) -> None:
    """As `start-supernode.sh` starts it: the pipe exists first, and the node may stop before torch is loaded."""
    folder = tmp_path / "node"
    folder.mkdir()
    os.mkfifo(folder / "bell", 0o600)
    command = [sys.executable, "-m", "deploy.warm_executor", "--runtime-api-address", "127.0.0.1:1"]
    executor = subprocess.Popen([*command, "--doorbell", str(folder / "bell")], cwd=APP_DIR)
    try:
        deadline = time.monotonic() + 60
        while not _loading_torch(executor.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        executor.send_signal(signal.SIGTERM)  # while torch is being imported (seconds)
        assert executor.wait(timeout=60) == 0
    finally:
        executor.kill()  # no-op once it has exited
        executor.wait()
    assert not folder.exists()
