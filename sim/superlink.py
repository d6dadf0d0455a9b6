"""The local simulation SuperLink that `python -m sim` starts, reuses and stops.

It runs in the project folder (the app's), whichever folder `python -m sim` was
typed in: a ServerApp's working directory is its SuperLink's, so a plain
`flwr run .` writes a relative `output-dir` under `<project>/outputs/`. A SuperLink
of ours that runs in another checkout's folder is restarted here.

`flwr run` with the default `local` connection talks to a SuperLink on
127.0.0.1:`$FLWR_LOCAL_SUPERLINK_HTTP_API_PORT` (39091), and if none answers it starts
one with runtime dependency installation on, which re-resolves the app's
dependencies with uv and downloads packages on every run. fedapp starts that
SuperLink itself first, with installation disabled so runs use this virtual
environment, records its PID and Flower version, and later `flwr run . --stream`
reuses it while this environment still has that Flower version.

Its files live in `$FLWR_HOME/fedapp/superlink-<port>/`: `superlink.pid`,
`superlink.flwr-version`, `superlink.log` and `state-flwr-<version>.db` (run history,
so `flwr log` works after a restart). The database is per Flower version because a
SuperLink migrates it to its own schema on start and an older Flower then refuses it
(1.41 cannot open a database 1.42 has opened), so checkouts on different Flower
versions can share `$FLWR_HOME`.

The Ray instance each run starts keeps its session folders in a temp folder of this
SuperLink's own (`RAY_TMPDIR`, not the shared `/tmp/ray`), so that `stop` knows what
is ours: it stops the Ray processes that still use that folder (a run stopped with
`flwr stop` orphans Ray's dashboard and runtime-env agents, which ignore SIGTERM and
linger for minutes), deletes the folder, and folds the database's write-ahead log back
into it, so no `-wal`/`-shm` files stay behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import httpx
import psutil

from sim.console import echo

REQUIRED_FLAGS = ("--simulation", "--disable-runtime-dependency-installation")
LOCAL_RAY = "local"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
RAY_STOP_TIMEOUT = 3.0  # Ray's orphaned agents ignore SIGTERM: SIGKILL follows soon


class SuperLinkError(RuntimeError):
    """The local SuperLink cannot be started, reused or stopped as asked."""


def flwr_home() -> Path:
    """Flower's home folder: `$FLWR_HOME` or `~/.flwr`."""
    return Path(os.environ.get("FLWR_HOME", Path.home() / ".flwr"))


def superlink_port() -> int:
    """The port Flower's `:local:` connection uses (`$FLWR_LOCAL_SUPERLINK_HTTP_API_PORT`, 39091)."""
    return int(os.environ.get("FLWR_LOCAL_SUPERLINK_HTTP_API_PORT", "39091"))


def flwr_environment() -> dict[str, str]:
    """The environment for Flower commands: offline-friendly, no telemetry or update checks.

    `RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO=0` opts into Ray's future behaviour for CPU-only
    actors and silences the warning Ray otherwise prints in every run. This virtual
    environment's `bin` goes first on PATH: the SuperLink finds `flower-superexec`
    there even when the environment was never activated (as under `make`).
    """
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
    }


def superlink_environment(ray_address: str | None, ray_folder: Path | None = None) -> dict[str, str]:
    """The simulation SuperLink's environment: Flower's, with `RAY_ADDRESS` naming its runs' Ray cluster.

    Without a cluster address it is Ray's `local`, so every run starts a Ray of its own:
    `ray.init()` without an address would otherwise attach to a cluster that `ray start`
    runs on this machine (Ray finds it through `ray_current_cluster` in its temp folder).
    That Ray keeps its sessions under `ray_folder` (`RAY_TMPDIR`) when one is given; a
    cluster's Ray keeps them where the cluster does.
    """
    environment = {**flwr_environment(), "RAY_ADDRESS": ray_address or LOCAL_RAY}
    if ray_address is None and ray_folder is not None:
        environment["RAY_TMPDIR"] = str(ray_folder)
    return environment


def flower_version() -> str:
    """The Flower version installed in this environment (the one a SuperLink started now runs)."""
    return version("flwr")


def venv_executable(name: str) -> str:
    """Path of a console script of this virtual environment (falls back to PATH)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


@dataclass(frozen=True)
class LocalSuperLink:
    """A simulation SuperLink on 127.0.0.1:`port`, managed through a PID file."""

    port: int
    folder: Path

    @classmethod
    def default(cls) -> LocalSuperLink:
        """The SuperLink `flwr run` with the `local` connection will use."""
        port = superlink_port()
        return cls(port, flwr_home() / "fedapp" / f"superlink-{port}")

    @property
    def pid_file(self) -> Path:
        return self.folder / "superlink.pid"

    @property
    def log_file(self) -> Path:
        return self.folder / "superlink.log"

    @property
    def version_file(self) -> Path:
        """`<pid> <flower version>` of the SuperLink fedapp started last."""
        return self.folder / "superlink.flwr-version"

    @property
    def ray_folder(self) -> Path:
        """The temp folder of the Ray instances this SuperLink's runs start (`RAY_TMPDIR`).

        Under the system temp folder, not `folder`: Ray's socket paths inside it must stay
        under 108 bytes. Named by user and by a digest of `folder`, so that it belongs to
        this SuperLink alone.
        """
        digest = hashlib.sha256(str(self.folder.resolve()).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"fedapp-ray-{os.getuid()}-{digest}"

    def is_healthy(self) -> bool:
        """True if something answers Flower's health endpoint on the port."""
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1.0).is_success
        except httpx.HTTPError:
            return False

    def process(self) -> psutil.Process | None:
        """The `flower-superlink` process serving this port, if any."""
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = proc.info["cmdline"] or []
            if any(part.endswith("flower-superlink") for part in cmdline[:2]) and _port_of(cmdline) == self.port:
                return proc
        return None

    def ensure_running(self, app_dir: Path, ray_address: str | None) -> bool:
        """Start the SuperLink unless a suitable one already runs; return True if started.

        A SuperLink on the port that installs dependencies at run time, or that was
        started for another Ray cluster, is not reused: one of ours is restarted, any
        other is reported with its PID. One of ours is also restarted when this
        environment's Flower version is not the one it was started with (an upgrade
        in place, or another checkout sharing `$FLWR_HOME`): its SuperExec would start
        this environment's `flwr-simulation`, which a SuperLink of another major.minor
        release rejects, and the run would make no progress. And it is restarted when
        it runs in another folder than `app_dir` (another checkout): its folder is where
        a plain `flwr run .` writes relative outputs, which belong to this project.
        """
        proc = self.process()
        if proc is not None:
            problem = (
                _unsuitable(proc, ray_address) or self._version_problem(proc) or self._folder_problem(proc, app_dir)
            )
            if problem is None:
                return False
            if not self._is_ours(proc):
                raise SuperLinkError(
                    f"a SuperLink not started by fedapp (PID {proc.pid}) listens on 127.0.0.1:{self.port}: {problem}. "
                    f"Stop it (kill {proc.pid}) or choose another port with FLWR_LOCAL_SUPERLINK_HTTP_API_PORT."
                )
            echo(f"restarting the SuperLink (PID {proc.pid}): {problem}")
            self.stop()
        elif self.is_healthy():
            raise SuperLinkError(
                f"something that is not a flower-superlink of this user answers on 127.0.0.1:{self.port}; "
                "choose another port with FLWR_LOCAL_SUPERLINK_HTTP_API_PORT"
            )
        self._start(app_dir, ray_address)
        return True

    def _is_ours(self, proc: psutil.Process) -> bool:
        return self.pid_file.exists() and self.pid_file.read_text().strip() == str(proc.pid)

    def _version_problem(self, proc: psutil.Process) -> str | None:
        """Why our SuperLink `proc` runs another Flower than this environment has, or None."""
        if not self._is_ours(proc):
            return None  # not ours: its version is unknown
        pid, _, started_with = (self.version_file.read_text() if self.version_file.exists() else "").partition(" ")
        started_with = started_with.strip() if pid == str(proc.pid) else ""
        installed = flower_version()
        if started_with == installed:
            return None
        running = f"it runs Flower {started_with}" if started_with else "its Flower version was not recorded"
        return f"{running}, this environment has Flower {installed}"

    def _folder_problem(self, proc: psutil.Process, app_dir: Path) -> str | None:
        """Why our SuperLink `proc` runs in another folder than the project `app_dir`, or None."""
        if not self._is_ours(proc):
            return None
        try:
            folder = Path(proc.cwd()).resolve()
        except psutil.AccessDenied:
            return None
        if folder == app_dir.resolve():
            return None
        return f"it runs in {folder}, this project is {app_dir.resolve()}"

    def _start(self, app_dir: Path, ray_address: str | None) -> None:
        """Launch a detached SuperLink in its own session and wait until it answers."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ray_folder.mkdir(mode=0o700, exist_ok=True)
        environment = superlink_environment(ray_address, self.ray_folder)
        command = [
            venv_executable("flower-superlink"),
            "--insecure",
            *REQUIRED_FLAGS,
            "--isolation",
            "subprocess",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--database",
            str(self.folder / f"state-flwr-{flower_version()}.db"),
        ]
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                command,
                cwd=app_dir,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))
        self.version_file.write_text(f"{proc.pid} {flower_version()}")
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SuperLinkError(f"flower-superlink exited with code {proc.returncode}; see {self.log_file}")
            if self.is_healthy():
                echo(f"started SuperLink PID {proc.pid} on 127.0.0.1:{self.port} (log: {self.log_file})")
                return
            time.sleep(0.25)
        proc.kill()
        raise SuperLinkError(f"flower-superlink did not answer within {START_TIMEOUT:.0f}s; see {self.log_file}")

    def stop(self) -> bool:
        """Stop the SuperLink recorded in the PID file and everything it started; True if one ran.

        Then remove what its runs left behind (`remove_leftovers`), also when it had
        already exited.
        """
        if not self.pid_file.exists():
            return False
        pid = int(self.pid_file.read_text().strip())
        self.pid_file.unlink()
        self.version_file.unlink(missing_ok=True)
        try:
            root = psutil.Process(pid)
            family = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            family = []
        _terminate(family, STOP_TIMEOUT)
        self.remove_leftovers()
        return bool(family)

    def remove_leftovers(self) -> None:
        """Stop the Ray processes of our runs that outlived them, delete their Ray folder, fold back the WAL.

        Only what is provably ours: processes whose command line or open files lie in
        `ray_folder`, that folder, and the `-wal`/`-shm` files of our databases (folded
        into the database by a checkpoint, which SQLite follows by deleting them).
        """
        _terminate(ray_processes(self.ray_folder), RAY_STOP_TIMEOUT)
        shutil.rmtree(self.ray_folder, ignore_errors=True)
        for database in self.folder.glob("state-flwr-*.db"):
            fold_write_ahead_log(database)


def ray_processes(ray_folder: Path) -> list[psutil.Process]:
    """The live processes that use `ray_folder`: named in their command line, or holding a file open in it."""
    prefix = f"{ray_folder}{os.sep}"
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if proc.pid == os.getpid():
            continue
        try:
            if any(prefix in part or part == str(ray_folder) for part in proc.info["cmdline"] or []) or any(
                item.path.startswith(prefix) for item in proc.open_files()
            ):
                found.append(proc)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def fold_write_ahead_log(database: Path) -> None:
    """Checkpoint `database`'s write-ahead log into it; closing the last connection then deletes `-wal`/`-shm`."""
    if not any(database.with_name(database.name + suffix).exists() for suffix in ("-wal", "-shm")):
        return
    with contextlib.closing(sqlite3.connect(database)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _terminate(processes: list[psutil.Process], timeout: float) -> None:
    """SIGTERM `processes`, then SIGKILL those still running after `timeout` seconds."""
    _signal_all(processes, signal.SIGTERM)
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    _signal_all(alive, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=5)


def _port_of(cmdline: list[str]) -> int:
    """The `--port` of a flower-superlink command line (Flower's default is 8000)."""
    if "--port" in cmdline:
        index = cmdline.index("--port")
        if index + 1 < len(cmdline) and cmdline[index + 1].isdigit():
            return int(cmdline[index + 1])
    return 8000


def _unsuitable(proc: psutil.Process, ray_address: str | None) -> str | None:
    """Why a running SuperLink cannot serve this run, or None."""
    cmdline = proc.cmdline()
    missing = [flag for flag in REQUIRED_FLAGS if flag not in cmdline]
    if missing:
        return f"it runs without {' '.join(missing)}"
    try:
        current = proc.environ().get("RAY_ADDRESS")
    except psutil.AccessDenied:
        current = None
    if current == LOCAL_RAY:
        current = None
    if (current or None) != (ray_address or None):
        return (
            f"it uses Ray cluster {current or 'none (a local Ray per run)'}, "
            f"this run asks for {ray_address or 'a local Ray per run'}"
        )
    return None


def _signal_all(processes: list[psutil.Process], sig: signal.Signals) -> None:
    for proc in processes:
        try:
            proc.send_signal(sig)
        except psutil.NoSuchProcess:
            continue
