"""The local simulation SuperLink `python -m sim` manages: reused only when it runs this Flower version
and this project's folder, and its runs use the Ray cluster asked for or one of their own."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest
from ray._private.services import canonicalize_bootstrap_address

import sim.superlink as superlink_module
from sim import flwr_cli
from sim.run import RunRequest, ensure_superlink
from sim.superlink import LocalSuperLink, superlink_environment
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
    monkeypatch.setattr(LocalSuperLink, "_folder_problem", lambda self, proc, app_dir: None)
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


def test_a_superlink_of_ours_running_in_another_checkout_is_restarted_in_this_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its folder is where a plain `flwr run .` writes relative outputs: it must be this project's."""
    link = LocalSuperLink(port=1, folder=tmp_path)
    running = psutil.Process()  # stands in for the SuperLink process; it runs in `running.cwd()`
    calls: list[str] = []
    monkeypatch.setattr(LocalSuperLink, "process", lambda self: running)
    monkeypatch.setattr(superlink_module, "_unsuitable", lambda proc, ray_address: None)
    monkeypatch.setattr(LocalSuperLink, "_version_problem", lambda self, proc: None)
    monkeypatch.setattr(LocalSuperLink, "stop", lambda self: calls.append("stop") or True)
    monkeypatch.setattr(LocalSuperLink, "_start", lambda self, app_dir, ray_address: calls.append(f"start {app_dir}"))
    link.pid_file.write_text(str(running.pid))
    here, elsewhere = Path(running.cwd()), tmp_path / "other-checkout"
    assert link.ensure_running(here, None) is False and calls == []
    assert link.ensure_running(elsewhere, None) is True and calls == ["stop", f"start {elsewhere}"]
    link.pid_file.write_text(str(running.pid + 1))  # not ours: left alone
    calls.clear()
    assert link.ensure_running(elsewhere, None) is False and calls == []


def test_a_superlink_started_for_a_sized_run_keeps_the_documented_default_for_plain_flwr_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m sim run --nodes 3` starts the SuperLink; a later plain `flwr run .` must get 10 nodes, not 3."""
    monkeypatch.setenv("FLWR_HOME", str(tmp_path))
    monkeypatch.setattr(LocalSuperLink, "ensure_running", lambda self, app_dir, ray_address: True)
    defaults: list[dict[str, int | float]] = []
    monkeypatch.setattr(flwr_cli, "configure_default_federation", defaults.append)
    ensure_superlink(RunRequest.build(APP_DIR, ["output-dir=" + str(tmp_path / "outputs")], nodes=3))
    assert defaults == [{"num-supernodes": 10, "client-resources-num-cpus": 1, "client-resources-num-gpus": 0.0}]


def test_without_a_cluster_address_every_run_starts_a_ray_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.9:6379")  # a stray address in the user's shell must not leak in
    environment = superlink_environment(None)
    assert environment["RAY_ADDRESS"] == "local"
    # Ray reads "local" as "start a new local instance", even when `ray start` runs a cluster on this
    # machine (which `ray.init()` without an address would attach to).
    monkeypatch.setenv("RAY_ADDRESS", environment["RAY_ADDRESS"])
    assert canonicalize_bootstrap_address(None) is None


def test_a_cluster_address_reaches_the_superlinks_simulations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    environment = superlink_environment("127.0.0.1:6379")
    assert environment["RAY_ADDRESS"] == "127.0.0.1:6379"
    assert environment["FLWR_TELEMETRY_ENABLED"] == "0"
