"""MLflow sink: the config as parameters, each round's numbers as metrics at step = round, the files as artefacts.

The store is `tracking-uri`: a team's server (`http://host:5000`), or by default the
local SQLite store `mlflow.db` in the folder relative paths resolve against (where
`mlflow ui` started in that folder looks). Runs go to the experiment
`tracking-experiment` (created if missing; a comparison gets its own) and are named
like the run's folder (`run-name`, else the Flower run id). `MlflowClient` is used
rather than MLflow's fluent API, whose active run is process-wide state.

Tracking never stops training: the store must answer when the run starts (else the
run fails at once, in one line), but a round that cannot be logged later stays
queued and goes with the next round's request. Retries and timeouts are bounded
(MLflow's defaults would retry a dead server for minutes per call).

A resumed run continues the MLflow run of the run it resumes (same store): its
status goes back to RUNNING, the rounds the store lacks are logged from the
checkpoint, and settings that changed on resume become `resumed.<key>` tags
(MLflow parameters cannot change). When that MLflow run already went past the
checkpoint (the same checkpoint resumed twice), a new MLflow run takes every round
from the checkpoint on, since MLflow cannot take logged points back.
"""

from __future__ import annotations

import os
import time
import warnings
from logging import WARNING
from pathlib import Path
from typing import Any

from flwr.common import log
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

from fedapp.config import ConfigError
from fedapp.tracking import SQLITE, TrackedRun, absolute_tracking_uri, hyperparameters, round_scalars

# MLflow reads these per request: a dead server costs seconds per call, not minutes (an explicit setting wins).
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
# MLflow 3.17's SQL store uses an option SQLAlchemy 2.1 deprecates; the warning says nothing about the run.
warnings.filterwarnings("ignore", message="The ``noload`` loader strategy is deprecated")

LOCAL_ARTIFACTS = "mlartifacts"
STEP_KEY = "central_accuracy"  # every record has it: its history says which rounds a run holds


class MlflowSink:
    """Logs a run to one MLflow run, continuing the resumed run's when it is in the same store."""

    def __init__(self, run: TrackedRun) -> None:
        self.uri = absolute_tracking_uri(run.config.tracking_uri, Path.cwd())
        self.client = MlflowClient(tracking_uri=self.uri)
        try:
            logged = self._continuable(run)
            if logged is None:
                self.experiment_id, self.run_id = self._create(run)
                logged = set()
            else:
                self.experiment_id, self.run_id = run.previous["experiment_id"], run.previous["run_id"]
                self._continue(run)
        except MlflowException as error:
            raise ConfigError(
                f"run-config key 'tracking-uri' = {run.config.tracking_uri!r}: MLflow at {self.uri} cannot be used "
                f"({_first_line(error)})"
            ) from None
        self.pending = [record for record in run.history if record["round"] not in logged]
        self._flush()

    @property
    def identity(self) -> dict[str, Any]:
        return {"tracking_uri": self.uri, "experiment_id": self.experiment_id, "run_id": self.run_id}

    def _create(self, run: TrackedRun) -> tuple[str, str]:
        """A new MLflow run in the run's experiment, with the config as its parameters."""
        experiment_id = self._experiment(run.config.tracking_experiment)
        created = self.client.create_run(experiment_id, run_name=run.name, tags={"fedapp.folder": str(run.folder)})
        params = [Param(key, str(value)) for key, value in hyperparameters(run.config).items()]
        self.client.log_batch(created.info.run_id, params=params)
        return experiment_id, created.info.run_id

    def _experiment(self, name: str) -> str:
        """The id of experiment `name`, created if missing (a local store keeps artefacts beside its database)."""
        existing = self.client.get_experiment_by_name(name)
        if existing is not None:
            return existing.experiment_id
        location = None
        if self.uri.startswith(SQLITE):
            location = str(Path(self.uri.removeprefix(SQLITE)).parent / LOCAL_ARTIFACTS)
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except MlflowException as error:  # another run created it meanwhile
            if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
            return self.client.get_experiment_by_name(name).experiment_id

    def _continuable(self, run: TrackedRun) -> set[int] | None:
        """The rounds the resumed run's MLflow run holds, or None when a new MLflow run is needed.

        A new one is needed without a resumed MLflow run in this store, and when that run
        already holds rounds past the checkpoint (another resume of the same checkpoint
        continued it): MLflow cannot take logged points back.
        """
        if run.previous.get("tracking_uri") != self.uri:
            return None
        logged = {metric.step for metric in self.client.get_metric_history(run.previous["run_id"], STEP_KEY)}
        last = run.history[-1]["round"] if run.history else -1
        return None if any(step > last for step in logged) else logged

    def _continue(self, run: TrackedRun) -> None:
        """Reopen the resumed run's MLflow run and note the settings that changed on resume."""
        self.client.update_run(self.run_id, status=RunStatus.to_string(RunStatus.RUNNING))
        params = self.client.get_run(self.run_id).data.params
        current = {key: str(value) for key, value in hyperparameters(run.config).items()}
        new = [Param(key, value) for key, value in current.items() if key not in params]
        changed = {f"resumed.{key}": value for key, value in current.items() if params.get(key, value) != value}
        if new:
            self.client.log_batch(self.run_id, params=new)
        for key, value in changed.items():
            self.client.set_tag(self.run_id, key, value)

    def log_round(self, record: dict[str, Any]) -> None:
        self.pending.append(record)
        self._flush()

    def _flush(self) -> None:
        """Log the queued rounds, one request each, oldest first; keep the rest queued on failure."""
        while self.pending:
            record = self.pending[0]
            now = int(time.time() * 1000)
            metrics = [Metric(key, value, now, record["round"]) for key, value in round_scalars(record).items()]
            try:
                self.client.log_batch(self.run_id, metrics=metrics)
            except MlflowException as error:
                log(
                    WARNING,
                    "[fedapp] MLflow: round %d not logged yet (%d queued, retried with the next round): %s",
                    record["round"],
                    len(self.pending),
                    _first_line(error),
                )
                return
            self.pending.pop(0)

    def finish(self, files: list[Path], completed: bool) -> None:
        self._flush()
        status = RunStatus.FINISHED if completed else RunStatus.FAILED
        try:
            for path in files:
                if path.exists():
                    self.client.log_artifact(self.run_id, str(path))
            self.client.set_terminated(self.run_id, status=RunStatus.to_string(status))
        except (MlflowException, OSError) as error:  # the run's results are on disk whatever happens here
            log(WARNING, "[fedapp] MLflow: could not close run %s: %s", self.run_id, _first_line(error))
        if self.pending:
            log(WARNING, "[fedapp] MLflow: %d rounds were never logged; metrics.json has them all", len(self.pending))


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
