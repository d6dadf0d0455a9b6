"""The local simulation SuperLink `python -m sim` manages: reused only when it runs this Flower version
and this project's folder, its runs use the Ray cluster asked for or one of their own, and its stop
leaves none of their Ray processes, Ray folders or SQLite journal files behind."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
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


def test_without_a_cluster_address_every_run_starts_a_ray_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.9:6379")  # a stray address in the user's shell must not leak in
    environment = superlink_environment(None, tmp_path / "ray")
    assert environment["RAY_ADDRESS"] == "local"
    assert environment["RAY_TMPDIR"] == str(tmp_path / "ray"), "its sessions go to a folder of our own, not /tmp/ray"
    # Ray reads "local" as "start a new local instance", even when `ray start` runs a cluster on this
    # machine (which `ray.init()` without an address would attach to).
    monkeypatch.setenv("RAY_ADDRESS", environment["RAY_ADDRESS"])
    assert canonicalize_bootstrap_address(None) is None


def test_a_cluster_address_reaches_the_superlinks_simulations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_TMPDIR", raising=False)
    environment = superlink_environment("127.0.0.1:6379", tmp_path / "ray")
    assert environment["RAY_ADDRESS"] == "127.0.0.1:6379"
    assert "RAY_TMPDIR" not in environment, "a cluster's Ray keeps its sessions where the cluster does"
    assert environment["FLWR_TELEMETRY_ENABLED"] == "0"


def test_the_superlink_starts_its_runs_ray_in_a_folder_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = LocalSuperLink(port=1, folder=tmp_path / "link")
    started: list[dict[str, str]] = []

    def no_start(command: list[str], **options: object) -> None:
        started.append(options["env"])  # type: ignore[arg-type]
        raise OSError("not started in this test")

    monkeypatch.setattr(superlink_module.subprocess, "Popen", no_start)
    try:
        with pytest.raises(OSError, match="not started"):
            link.ensure_running(APP_DIR, None)
        assert started[0]["RAY_TMPDIR"] == str(link.ray_folder)
        assert link.ray_folder.is_dir() and link.ray_folder != LocalSuperLink(1, tmp_path / "other").ray_folder
    finally:
        link.remove_leftovers()
    assert not link.ray_folder.exists()


def _sleeper(holding: Path | None = None, ignore_sigterm: bool = False) -> subprocess.Popen[bytes]:
    """A process in its own session (an orphan for the SuperLink's tree), holding `holding` open when given."""
    code = "import signal, sys, time\n"
    if ignore_sigterm:
        code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    if holding is not None:
        code += "held = open(sys.argv[1], 'a')\n"
    code += "time.sleep(120)\n"
    proc = subprocess.Popen([sys.executable, "-c", code, str(holding)], start_new_session=True)
    deadline = time.monotonic() + 30
    while holding is not None and str(holding) not in [f.path for f in psutil.Process(proc.pid).open_files()]:
        assert time.monotonic() < deadline, "the stand-in never opened its file"
        time.sleep(0.05)
    return proc


def _database_with_a_write_ahead_log(path: Path) -> None:
    """A WAL-mode SQLite database whose writer died without closing it (as a stopped SuperLink does)."""
    code = (
        "import os, sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1]); c.execute('pragma journal_mode=wal')\n"
        "c.execute('create table runs(id)'); c.execute('insert into runs values (7)'); c.commit(); os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)


def test_stop_removes_the_ray_leftovers_and_journal_files_of_our_runs_and_nothing_else(tmp_path: Path) -> None:
    """After `flwr stop`, Ray's agents are orphans (outside the SuperLink's tree) that ignore SIGTERM."""
    link = LocalSuperLink(port=1, folder=tmp_path / "link")
    link.folder.mkdir()
    logs = link.ray_folder / "ray" / "session_2026-01-01_00-00-00_000000_1" / "logs"
    logs.mkdir(parents=True)
    (tmp_path / "someone-elses-ray").mkdir()
    database = link.folder / "state-flwr-1.42.0.db"
    _database_with_a_write_ahead_log(database)
    superlink = _sleeper()
    agent = _sleeper(logs / "dashboard_agent.log", ignore_sigterm=True)
    other = _sleeper(tmp_path / "someone-elses-ray" / "agent.log", ignore_sigterm=True)
    try:
        link.pid_file.write_text(str(superlink.pid))
        assert link.stop() is True
        assert not psutil.pid_exists(superlink.pid)
        assert not psutil.pid_exists(agent.pid), "the orphaned agent of our Ray is stopped"
        assert other.poll() is None, "a process that is not ours is left alone"
        assert not link.ray_folder.exists()
        assert sorted(path.name for path in link.folder.iterdir()) == [database.name]
        assert sqlite3.connect(database).execute("select id from runs").fetchall() == [(7,)], "the log is kept"
    finally:
        for proc in (superlink, agent, other):
            proc.kill()
            proc.wait()
