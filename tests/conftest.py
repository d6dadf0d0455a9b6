"""Fixtures shared by the unit and end-to-end tests: an isolated Flower home and SuperLink, message identity."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from flwr.supercore.task_identity import TaskIdentity

from fedapp.faults import ENABLE_VARIABLE
from fedapp.node_state import STATE_DIR_VARIABLE
from sim.superlink import LocalSuperLink
from tests.helpers import APP_DIR, flower_processes, free_port


@pytest.fixture(scope="session")
def flower_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private `FLWR_HOME` and SuperLink port, so tests never touch the user's ~/.flwr or demo.

    The test SuperLink (and so its ServerApps and ClientApps) also allows fault injection,
    and its nodes keep their state (SCAFFOLD, FedBN, Ditto) in a folder of the session's.
    """
    home = tmp_path_factory.mktemp("flwr-home")
    variables = ("FLWR_HOME", "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT", ENABLE_VARIABLE, STATE_DIR_VARIABLE)
    saved = {key: os.environ.get(key) for key in variables}
    os.environ["FLWR_HOME"] = str(home)
    os.environ["FLWR_LOCAL_SUPERLINK_HTTP_API_PORT"] = str(free_port())
    os.environ[ENABLE_VARIABLE] = "1"
    os.environ[STATE_DIR_VARIABLE] = str(tmp_path_factory.mktemp("node-state"))
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


@pytest.fixture
def message_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let tests build `Message`s outside a Flower run (Flower reads the sender's identity)."""
    monkeypatch.setattr(TaskIdentity, "_run_id", 1)
    monkeypatch.setattr(TaskIdentity, "_node_id", 0)
    monkeypatch.setattr(TaskIdentity, "_task_id", 1)
