"""The `flwr` commands `python -m sim` uses: submit a run, follow its logs, read its final status.

`flwr run --stream` exits 0 even when the run fails, so a run is submitted with
`--format json` (which returns its id at once), its log is streamed with
`flwr log --stream`, and the outcome is read from `flwr list --run-id --format json`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sim.superlink import flwr_environment, venv_executable

CONNECTION = "local"
FINISHED_OK = "finished:completed"


class FlwrCommandError(RuntimeError):
    """A `flwr` command failed."""


def _flwr(*arguments: str) -> str:
    """Run `flwr <arguments>` and return its stdout; raise with its output on failure."""
    result = subprocess.run(  # noqa: S603 (fixed executable)
        [venv_executable("flwr"), *arguments],
        capture_output=True,
        text=True,
        env=flwr_environment(),
        check=False,
    )
    if result.returncode != 0:
        raise FlwrCommandError(f"flwr {' '.join(arguments[:2])} failed ({result.returncode}): {result.stdout}{result.stderr}".strip())
    return result.stdout


def _json_payload(output: str) -> dict[str, Any]:
    """The JSON object in a `flwr ... --format json` output (Flower may print notes before it)."""
    start = output.find("{")
    if start < 0:
        raise FlwrCommandError(f"no JSON in flwr output: {output!r}")
    return json.loads(output[start:])


def federation_config_argument(settings: dict[str, int | float]) -> str:
    """Encode simulation settings for `--federation-config`."""
    return " ".join(f"{key}={value}" for key, value in settings.items())


def submit(app_dir: Path, overrides: list[str], federation: dict[str, int | float]) -> int:
    """Submit the app to the local SuperLink; return the run id."""
    payload = _json_payload(
        _flwr(
            "run",
            str(app_dir),
            CONNECTION,
            "--format",
            "json",
            "--federation-config",
            federation_config_argument(federation),
            *overrides,
        )
    )
    if not payload.get("success") or payload.get("run-id") is None:
        raise FlwrCommandError(f"flwr run did not start a run: {payload}")
    return int(payload["run-id"])


def configure_default_federation(federation: dict[str, int | float]) -> None:
    """Make plain `flwr run .` on this SuperLink use `federation` (until the SuperLink restarts)."""
    flags = [f"--{key}={value}" for key, value in federation.items()]
    _flwr("federation", "simulation-config", "@none/default", CONNECTION, *flags)


def status(run_id: int) -> str:
    """The run's status, e.g. `running` or `finished:completed` / `finished:failed`."""
    payload = _json_payload(_flwr("list", CONNECTION, "--run-id", str(run_id), "--format", "json"))
    runs = payload.get("runs") or []
    if not runs:
        raise FlwrCommandError(f"flwr list has no run {run_id}: {payload}")
    return str(runs[0]["status"])


def follow(run_id: int, on_line: Callable[[str], None] = lambda line: print(line, end="", flush=True)) -> None:
    """Stream the run's log lines to `on_line` until the run ends."""
    with subprocess.Popen(  # noqa: S603 (fixed executable)
        [venv_executable("flwr"), "log", str(run_id), CONNECTION, "--stream"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=flwr_environment(),
    ) as stream:
        assert stream.stdout is not None
        for line in stream.stdout:
            on_line(line)


def wait_finished(run_id: int, poll_seconds: float = 1.0, timeout: float = 60.0) -> str:
    """Poll until the run's status is final (the log stream may end slightly before); return it."""
    deadline = time.monotonic() + timeout
    current = status(run_id)
    while not current.startswith("finished") and time.monotonic() < deadline:
        time.sleep(poll_seconds)
        current = status(run_id)
    return current


def stop_run(run_id: int) -> None:
    """Ask the SuperLink to stop a running run."""
    _flwr("stop", str(run_id), CONNECTION)


def echo(text: str) -> None:
    """Print a progress line of `python -m sim` itself."""
    print(f"[sim] {text}", file=sys.stdout, flush=True)
