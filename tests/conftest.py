"""Shared fixtures: an isolated Flower home and simulation SuperLink, and message helpers."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from flwr.app import Message, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from fedapp.faults import ENABLE_VARIABLE
from sim.run import RunOutcome, RunRequest, execute
from sim.superlink import LocalSuperLink

APP_DIR = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def flower_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private `FLWR_HOME` and SuperLink port, so tests never touch the user's ~/.flwr or demo.

    The test SuperLink (and so its ServerApps and ClientApps) also allows fault injection.
    """
    home = tmp_path_factory.mktemp("flwr-home")
    saved = {key: os.environ.get(key) for key in ("FLWR_HOME", "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT", ENABLE_VARIABLE)}
    os.environ["FLWR_HOME"] = str(home)
    os.environ["FLWR_LOCAL_SUPERLINK_HTTP_API_PORT"] = str(free_port())
    os.environ[ENABLE_VARIABLE] = "1"
    yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def superlink(flower_home: Path) -> Iterator[LocalSuperLink]:
    """The local simulation SuperLink every `flwr run` test submits to; stopped (fully) at the end."""
    link = LocalSuperLink.default()
    link.ensure_running(APP_DIR, ray_address=None)
    yield link
    link.stop()
    leftovers = flower_processes(link.port)
    assert not leftovers, f"processes left behind: {leftovers}"


def flower_processes(port: int) -> list[str]:
    """Command lines of Flower processes still serving `port` (for leak checks)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if f"127.0.0.1:{port}" in cmdline or f"--port {port}" in cmdline:
            found.append(cmdline)
    return found


def run_app(superlink: LocalSuperLink, tmp_path: Path, nodes: int = 4, **overrides: Any) -> RunOutcome:
    """Run the real app through `flwr run` on the test SuperLink; outputs go under `tmp_path`."""
    extra = {"output-dir": str(tmp_path), **{key.replace("_", "-"): value for key, value in overrides.items()}}
    request = RunRequest.build(APP_DIR, [], nodes=nodes, extra=extra)
    return execute(request)


@pytest.fixture
def message_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let tests build `Message`s outside a Flower run (Flower reads the sender's identity)."""
    monkeypatch.setattr(TaskIdentity, "_run_id", 1)
    monkeypatch.setattr(TaskIdentity, "_node_id", 0)
    monkeypatch.setattr(TaskIdentity, "_task_id", 1)


def reply_from(node_id: int, request: Message, content: RecordDict, monkeypatch: pytest.MonkeyPatch) -> Message:
    """A reply to `request` as node `node_id` would send it."""
    monkeypatch.setattr(TaskIdentity, "_node_id", node_id)
    return Message(content, reply_to=request)
