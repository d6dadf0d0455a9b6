"""The `flwr` commands `python -m sim` uses: submit a run, follow its logs, read its final status.

`flwr run --stream` exits 0 even when the run fails, so a run is submitted with
`--format json` (which returns its id at once), its log is streamed with
`flwr log --stream`, and the outcome is read from `flwr list --run-id --format json`.

Every command takes the SuperLink `connection` (default `local`, the simulation
SuperLink). Flower's message when it cannot reach a SuperLink is the same for every
cause; `deploy.connections` adds the likely cause for a deployment's connection.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sim.console import echo  # noqa: F401 (re-exported: the commands' modules import it from here)
from sim.superlink import flwr_environment, venv_executable

CONNECTION = "local"
UNREACHABLE = "Connection to the SuperLink is unavailable"
FINISHED_OK = "finished:completed"


class FlwrCommandError(RuntimeError):
    """A `flwr` command failed."""

    @property
    def unreachable(self) -> bool:
        """True when Flower could not reach the SuperLink at all."""
        return UNREACHABLE in str(self)


def _flwr(*arguments: str) -> str:
    """Run `flwr <arguments>` and return its stdout; raise with its output on failure."""
    result = subprocess.run(
        [venv_executable("flwr"), *arguments],
        capture_output=True,
        text=True,
        env=flwr_environment(),
        check=False,
    )
    if result.returncode != 0:
        raise FlwrCommandError(
            f"flwr {' '.join(arguments[:2])} failed ({result.returncode}): {result.stdout}{result.stderr}".strip()
        )
    return result.stdout


def _flwr_json(*arguments: str) -> dict[str, Any]:
    """Run `flwr <arguments> --format json` and return its JSON object; raise unless it succeeded.

    With `--format json`, flwr exits 0 on failure and reports it in the object.
    """
    output = _flwr(*arguments, "--format", "json")
    start = output.find("{")  # Flower may print notes before the object
    if start < 0:
        raise FlwrCommandError(f"no JSON in flwr output: {output!r}")
    payload = json.loads(output[start:])
    if not payload.get("success", False):
        raise FlwrCommandError(f"flwr {' '.join(arguments[:2])} failed: {payload.get('error-message', payload)}")
    return payload


def federation_config_argument(settings: dict[str, int | float]) -> str:
    """Encode simulation settings for `--federation-config`."""
    return " ".join(f"{key}={value}" for key, value in settings.items())


def submit(
    app_dir: Path, overrides: list[str], federation: dict[str, int | float] | None, connection: str = CONNECTION
) -> int:
    """Submit the app to the SuperLink of `connection`; return the run id.

    `federation` configures a simulation SuperLink; a deployment's federation is the
    SuperNodes connected to it, so it is None there.
    """
    federation_arguments = ["--federation-config", federation_config_argument(federation)] if federation else []
    payload = _flwr_json("run", str(app_dir), connection, *federation_arguments, *overrides)
    if payload.get("run-id") is None:
        raise FlwrCommandError(f"flwr run did not start a run: {payload}")
    return int(payload["run-id"])


def configure_default_federation(federation: dict[str, int | float]) -> None:
    """Make plain `flwr run .` (no `--federation-config`) on this SuperLink use `federation`, until it restarts."""
    flags = [f"--{key}={value}" for key, value in federation.items()]
    _flwr("federation", "simulation-config", "@none/default", CONNECTION, *flags)


def status(run_id: int, connection: str = CONNECTION) -> str:
    """The run's status, e.g. `running` or `finished:completed` / `finished:failed`."""
    payload = _flwr_json("list", connection, "--run-id", str(run_id))
    runs = payload.get("runs") or []
    if not runs:
        raise FlwrCommandError(f"flwr list has no run {run_id}: {payload}")
    return str(runs[0]["status"])


def follow(
    run_id: int,
    on_line: Callable[[str], None] = lambda line: print(line, end="", flush=True),
    connection: str = CONNECTION,
) -> None:
    """Stream the run's log lines to `on_line` until the run ends."""
    with subprocess.Popen(
        [venv_executable("flwr"), "log", str(run_id), connection, "--stream"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=flwr_environment(),
    ) as stream:
        for line in stream.stdout or ():
            on_line(line)


def wait_finished(run_id: int, poll_seconds: float = 1.0, timeout: float = 60.0, connection: str = CONNECTION) -> str:
    """Poll until the run's status is final (the log stream may end slightly before); return it."""
    deadline = time.monotonic() + timeout
    current = status(run_id, connection)
    while not current.startswith("finished") and time.monotonic() < deadline:
        time.sleep(poll_seconds)
        current = status(run_id, connection)
    return current


def stop_run(run_id: int, connection: str = CONNECTION) -> None:
    """Ask the SuperLink to stop a running run."""
    _flwr("stop", str(run_id), connection)
