"""The local simulation SuperLink `python -m sim` manages: reused only when it runs this Flower version."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

import sim.superlink as superlink_module
from sim.superlink import LocalSuperLink
from tests.helpers import APP_DIR


def test_a_superlink_started_with_another_flower_version_is_restarted_not_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an upgrade in place the old SuperLink still answers, but would reject the new `flwr-simulation`."""
    link = LocalSuperLink(port=1, folder=tmp_path)
    running = psutil.Process()  # stands in for the SuperLink process on the port
    calls: list[str] = []
    monkeypatch.setattr(LocalSuperLink, "process", lambda self: running)
    monkeypatch.setattr(superlink_module, "_unsuitable", lambda proc, ray_address: None)
    monkeypatch.setattr(LocalSuperLink, "stop", lambda self: calls.append("stop") or True)
    monkeypatch.setattr(LocalSuperLink, "_start", lambda self, app_dir, ray_address: calls.append("start"))
    link.pid_file.write_text(str(running.pid))

    link.version_file.write_text(f"{running.pid} {superlink_module.flower_version()}")
    assert link.ensure_running(APP_DIR, None) is False and calls == []

    for recorded in (f"{running.pid} 1.41.0", "", f"{running.pid + 1} {superlink_module.flower_version()}"):
        link.version_file.write_text(recorded)
        calls.clear()
        assert link.ensure_running(APP_DIR, None) is True and calls == ["stop", "start"], recorded

    link.pid_file.write_text(str(running.pid + 1))  # not ours: its version is unknown, so it is reused
    link.version_file.write_text(f"{running.pid} 1.41.0")
    calls.clear()
    assert link.ensure_running(APP_DIR, None) is False and calls == []
