"""Experiment tracking: a run's settings and rounds in TensorBoard and MLflow, where PyTorch users look.

`tracking` names the sinks: `none`, or a comma list of `tensorboard` and `mlflow`.
The ServerApp opens them once the run's folder exists (`open_tracker`), the
federation loop hands each round's record to `Tracker.log_round` as the round
completes, and the ServerApp closes them with the run's files (`Tracker.finish`).
Each sink is one module behind the `Tracker` interface and imports its package only
when chosen; the packages are the optional extra `tracking` (`make tracking`).
Flower 1.42 ships no tracking of its own (its old TensorBoard helper is gone), so the
app logs: the loop already holds every round's record.

What identifies a tracked run (TensorBoard's log folder, MLflow's store and run id)
goes into the run's `metrics.json` and checkpoint, so a resumed run continues the
same tracked run instead of starting another.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fedapp.config import ConfigError, RunConfig

INSTALL_HINT = (
    "install the extra with `make tracking` (or `.venv/bin/pip install -e '.[tracking]'` in the project folder)"
)
PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow"}
LOCAL_STORE = "mlflow.db"
SQLITE = "sqlite:///"


@dataclass(frozen=True)
class TrackedRun:
    """What a sink needs to open, or continue, the tracked run of one fedapp run."""

    config: RunConfig
    name: str
    folder: Path
    previous: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)


class Tracker(Protocol):
    """One tracking sink: logs every round's record as it completes, then the run's files."""

    @property
    def identity(self) -> dict[str, Any]:
        """What identifies the tracked run (JSON-ready), to continue it when the run is resumed."""

    def log_round(self, record: dict[str, Any]) -> None:
        """Log one round's record (`metrics.json`'s) at step `record['round']`."""

    def finish(self, files: list[Path], completed: bool) -> None:
        """Attach the run's files (where the sink keeps files) and close the tracked run."""


class Trackers:
    """The sinks a run chose, driven as one; no sink at all for `tracking=none`."""

    def __init__(self, sinks: dict[str, Tracker]) -> None:
        self.sinks = sinks

    @property
    def identity(self) -> dict[str, Any]:
        return {name: sink.identity for name, sink in self.sinks.items()}

    def log_round(self, record: dict[str, Any]) -> None:
        for sink in self.sinks.values():
            sink.log_round(record)

    def finish(self, files: list[Path], completed: bool) -> None:
        for sink in self.sinks.values():
            sink.finish(files, completed)


def check_installed(config: RunConfig) -> None:
    """Refuse a sink whose package is not installed here (the ServerApp's side), in one line."""
    for name in config.trackers:
        if importlib.util.find_spec(PACKAGES[name]) is None:
            raise ConfigError(
                f"run-config key 'tracking' = {config.tracking!r} needs the package {PACKAGES[name]!r}, "
                f"which is not installed; {INSTALL_HINT}"
            )


def absolute_tracking_uri(uri: str, base: Path) -> str:
    """`tracking-uri` with the local default and relative SQLite paths resolved against `base`.

    '' is the local store `sqlite:///<base>/mlflow.db`, the one `mlflow ui` opens when
    started in `base`; `sqlite:///runs.db` (three slashes: relative) becomes absolute too.
    """
    if not uri:
        return f"{SQLITE}{(base / LOCAL_STORE).absolute()}"
    if uri.startswith(SQLITE) and not uri.startswith(SQLITE + "/"):
        return f"{SQLITE}{(base / uri.removeprefix(SQLITE)).absolute()}"
    return uri


def round_scalars(record: dict[str, Any]) -> dict[str, float]:
    """The numbers of a round's record, by its `metrics.json` key: what the sinks plot.

    Lists and per-node details (`failed_nodes`, `clients`, ...) stay in `metrics.json`;
    flags count as 0/1; absent values (None, NaN) are left out.
    """
    scalars = {}
    for key, value in record.items():
        if key == "round" or not isinstance(value, (int, float)):
            continue
        number = float(value)
        if math.isfinite(number):
            scalars[key] = number
    return scalars


def hyperparameters(config: RunConfig) -> dict[str, str | int | float]:
    """The run config as the sinks' hyper-parameters (every key, its value)."""
    return dict(config.to_mapping())


def open_tracker(run: TrackedRun) -> Trackers:
    """Open (or continue) every sink the run chose; each imports its package only now.

    Raises
    ------
    ConfigError
        If a sink's package is missing or its store cannot be reached.
    """
    check_installed(run.config)
    sinks: dict[str, Tracker] = {}
    for name in run.config.trackers:
        sink_run = TrackedRun(run.config, run.name, run.folder, run.previous.get(name, {}), run.history)
        if name == "tensorboard":
            from fedapp.tracking.tensorboard_sink import TensorBoardSink  # noqa: PLC0415 (optional package)

            sinks[name] = TensorBoardSink(sink_run)
        else:
            from fedapp.tracking.mlflow_sink import MlflowSink  # noqa: PLC0415 (optional package)

            sinks[name] = MlflowSink(sink_run)
    return Trackers(sinks)
