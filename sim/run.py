"""`python -m sim run`: one federated run on the local simulation SuperLink, checked end to end.

It validates the overrides before anything starts, makes sure the SuperLink runs
(with runtime dependency installation off), submits with `flwr run`, streams the log
with elapsed time, and exits non-zero unless the run finished as completed. It then
prints the output folder and the final central accuracy.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fedapp import tasks
from fedapp.checkpoint import check_same_nodes, resume_point
from fedapp.choices import is_factory
from fedapp.config import NO_DATASET, ConfigError, RunConfig, parse_trackers
from fedapp.outputs import METRICS_FILE, check_output_dir, resolve_run_folder
from fedapp.preflight import check_run, run_models
from fedapp.privacy import check_nodes
from fedapp.tracking import absolute_tracking_uri, check_installed
from sim import flwr_cli
from sim.flwr_cli import FINISHED_OK, echo
from sim.overrides import app_defaults, as_text_where_declared, parse_overrides, to_flwr_arguments, validated_config
from sim.presets import DEFAULT_FEDERATION, federation_settings
from sim.superlink import LocalSuperLink


@dataclass(frozen=True)
class RunRequest:
    """What to run: the app, its validated config and overrides, and the simulated federation."""

    app_dir: Path
    config: RunConfig
    overrides: dict[str, Any]
    federation: dict[str, int | float]
    ray_address: str | None = None

    @classmethod
    def build(
        cls,
        app_dir: Path,
        override_texts: list[str],
        preset: str = "cpu",
        nodes: int | None = None,
        ray_address: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> RunRequest:
        """Parse and validate everything a run needs (raises `ConfigError` before any work)."""
        overrides = {**parse_overrides(override_texts), **(extra or {})}
        overrides = _with_absolute_paths(app_dir, as_text_where_declared(app_dir, overrides))
        config = validated_config(app_dir, overrides)
        check_output_dir(config.output_dir)
        check_installed(config)
        resumed = resume_point(config)
        federation = federation_settings(preset, nodes)
        _check_federation(config, federation)
        check_run(config, int(federation["num-supernodes"]))
        check_factories_import_where_apps_run(app_dir, config, int(federation["num-supernodes"]))
        if resumed is not None:
            check_same_nodes(config, resumed, [int(federation["num-supernodes"])])
        return cls(app_dir, config, overrides, federation, ray_address)

    @property
    def num_nodes(self) -> int:
        return int(self.federation["num-supernodes"])


@dataclass(frozen=True)
class RunOutcome:
    """How a submitted run ended, and where its outputs are."""

    run_id: int
    status: str
    folder: Path
    seconds: float

    @property
    def succeeded(self) -> bool:
        return self.status == FINISHED_OK

    def metrics(self) -> dict[str, Any]:
        """The run's `metrics.json`."""
        return json.loads((self.folder / METRICS_FILE).read_text())


def _with_absolute_paths(app_dir: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """Resolve `output-dir`, `resume-from`, a path-like `dataset` and MLflow's local store against this shell's folder.

    The ServerApp runs in the SuperLink's working directory and the clients in Ray's,
    so relative paths are made absolute here, where the user typed them. MLflow's
    default store (`tracking-uri` '') becomes `mlflow.db` here, beside `outputs/`.
    """
    resolved = dict(overrides)
    defaults = app_defaults(app_dir)
    output_dir = resolved.get("output-dir", defaults["output-dir"])
    resolved["output-dir"] = str(Path(output_dir).expanduser().absolute())
    if "mlflow" in parse_trackers(str(resolved.get("tracking", defaults.get("tracking", "none")))):
        resolved["tracking-uri"] = absolute_tracking_uri(str(resolved.get("tracking-uri", "")), Path.cwd())
    if resolved.get("resume-from"):
        resolved["resume-from"] = str(Path(str(resolved["resume-from"])).expanduser().absolute())
    dataset = resolved.get("dataset")
    if isinstance(dataset, str) and dataset.startswith((".", "~")):
        resolved["dataset"] = str(Path(dataset).expanduser().absolute())
    return resolved


def _check_federation(config: RunConfig, federation: dict[str, int | float]) -> None:
    """Reject settings the simulated federation cannot satisfy (the run would wait forever)."""
    nodes = int(federation["num-supernodes"])
    if nodes < 1:
        raise ConfigError(f"--nodes = {nodes} is not allowed; allowed: an integer >= 1")
    for key, value in (
        ("min-available-nodes", config.min_available_nodes),
        ("min-train-nodes", config.min_train_nodes),
    ):
        if value > nodes:
            raise ConfigError(
                f"run-config key {key!r} = {value} exceeds the {nodes} simulated nodes; allowed: <= {nodes}"
            )
    check_nodes(config, nodes, own_data_nodes=0)
    if float(federation["client-resources-num-gpus"]) > 0 and not torch.cuda.is_available():
        raise ConfigError(
            f"client-resources-num-gpus = {federation['client-resources-num-gpus']} needs a CUDA GPU and none is "
            "visible; allowed here: the 'cpu' preset"
        )


def check_factories_import_where_apps_run(app_dir: Path, config: RunConfig, num_nodes: int) -> None:
    """Refuse a user's model factory that imports in this shell only (through PYTHONPATH or its folder).

    `check_run` imports factories in this process, whose path has this shell's
    PYTHONPATH and current folder. The ServerApp and ClientApps run in processes of
    the SuperLink, which may have been started from another shell, and on edge nodes
    that never see this one: they import from the FAB (the app folder's `fab-include`
    files) and the virtual environment's packages. So each factory's module is imported
    once more in a child that has just those (`python -I`, the app folder on its path).

    Raises
    ------
    ConfigError
        Naming the key (`model` or `client-model`), the module and where to put it.
    """
    for name in run_models(config, num_nodes):
        if not is_factory(name):
            continue
        module = name.partition(":")[0]
        problem = _import_problem(app_dir, module)
        if problem:
            key = "model" if name == config.model else "client-model"
            raise ConfigError(
                f"run-config key {key!r} = {name!r}: module {module!r} imports in this shell but not where the "
                f"ServerApp and ClientApps run, which see neither PYTHONPATH nor this folder ({problem}); allowed: "
                f"a module under usermodels/ (the FAB carries it to every node) or a package installed in "
                f"{Path(sys.prefix)}"
            )


@functools.cache
def _import_problem(app_dir: Path, module: str) -> str:
    """Why `module` does not import with only the app folder and the environment's packages ('' if it does)."""
    probe = "import importlib, sys; sys.path.insert(0, sys.argv[1]); importlib.import_module(sys.argv[2])"
    result = subprocess.run(
        [sys.executable, "-I", "-c", probe, str(app_dir), module],
        cwd=app_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = result.stderr.strip().splitlines()
    return "" if result.returncode == 0 else (lines[-1] if lines else f"exit code {result.returncode}")


def check_simulated(config: RunConfig) -> None:
    """Refuse what only a deployment can run: simulated nodes share the run's dataset, so there must be one."""
    if config.dataset == NO_DATASET:
        raise ConfigError(
            "run-config key 'dataset' = 'none' means every node brings its own data (data-path on an edge node); "
            "allowed in a simulation: a dataset the simulated nodes share"
        )


def ensure_superlink(request: RunRequest) -> LocalSuperLink:
    """Start (or reuse) the local simulation SuperLink this request needs.

    A SuperLink it starts gets the documented default federation (`DEFAULT_FEDERATION`:
    10 nodes, 1 CPU each) for plain `flwr run .`, whatever this request's `--nodes`:
    `python -m sim` passes its own federation with every run it submits.
    """
    check_simulated(request.config)
    superlink = LocalSuperLink.default()
    if superlink.ensure_running(request.app_dir, request.ray_address):
        flwr_cli.configure_default_federation(DEFAULT_FEDERATION)
    return superlink


def execute(request: RunRequest, label: str = "", connection: str = flwr_cli.CONNECTION) -> RunOutcome:
    """Submit `request`, stream its log with elapsed time, and wait for its final status.

    `connection` defaults to the local simulation SuperLink; any other connection is a
    deployment (e.g. `deploy/local-cluster.sh`), whose nodes are the SuperNodes
    connected to it, so the request's simulation settings are not sent there.
    """
    started = time.monotonic()
    if connection == flwr_cli.CONNECTION:
        check_simulated(request.config)
    federation = request.federation if connection == flwr_cli.CONNECTION else None
    run_id = flwr_cli.submit(request.app_dir, to_flwr_arguments(request.overrides), federation, connection)
    prefix = f"{label} " if label else ""
    echo(
        f"{prefix}run {run_id}: strategy={request.config.strategy} model={request.config.model} "
        f"nodes={request.num_nodes} rounds={request.config.num_server_rounds}"
    )
    try:
        flwr_cli.follow(
            run_id,
            lambda line: print(f"[{time.monotonic() - started:7.1f}s] {prefix}{line}", end="", flush=True),
            connection,
        )
    except KeyboardInterrupt:
        echo(f"interrupted: stopping run {run_id}")
        flwr_cli.stop_run(run_id, connection)
        raise
    status = flwr_cli.wait_finished(run_id, connection=connection)
    return RunOutcome(run_id, status, resolve_run_folder(request.config, run_id), time.monotonic() - started)


def run_command(
    app_dir: Path, override_texts: list[str], preset: str, nodes: int | None, ray_address: str | None
) -> int:
    """The `run` subcommand; returns the process exit code."""
    request = RunRequest.build(app_dir, override_texts, preset, nodes, ray_address)
    ensure_superlink(request)
    outcome = execute(request)
    if not outcome.succeeded:
        echo(
            f"run {outcome.run_id} ended with status {outcome.status}; "
            f"its log is above (flwr log {outcome.run_id} --show)"
        )
        return 1
    final = outcome.metrics()["rounds"][-1]
    echo(f"run {outcome.run_id} completed in {outcome.seconds:.1f}s")
    echo(f"outputs: {outcome.folder}")
    echo(f"final {tasks.headline('central', request.config.task, final)} (round {final['round']})")
    return 0
