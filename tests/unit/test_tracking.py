"""Experiment tracking without a run: config keys, what is logged, both sinks read back, resume, refusals.

The sinks are exercised against the real libraries: TensorBoard's own reader on the
event files, MLflow's client on a SQLite store (the same SQL store `mlflow server`
uses; `tests/e2e/test_tracking_runs.py` goes through a real server).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from flwr.app import ArrayRecord
from mlflow import MlflowClient
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.backend.event_processing import plugin_event_accumulator as plugin_accumulator
from tensorboard.plugins.hparams import plugin_data_pb2

import sim.__main__ as sim_main
from fedapp import server_app
from fedapp.checkpoint import Checkpoint, read_checkpoint, resume_point, write_checkpoint
from fedapp.config import ConfigError, RunConfig
from fedapp.outputs import RunOutputs, check_output_dir
from fedapp.tracking import TrackedRun, absolute_tracking_uri, check_installed, open_tracker, round_scalars
from sim.overrides import app_defaults
from sim.run import RunRequest
from tests.helpers import APP_DIR

DEFAULTS = app_defaults(APP_DIR)


def build(**changes: object) -> RunConfig:
    return RunConfig.from_mapping({**DEFAULTS, **{k.replace("_", "-"): v for k, v in changes.items()}})


def record(server_round: int, accuracy: float, **extra: Any) -> dict[str, Any]:
    """A round's record as `metrics.json` holds it (numbers, lists, flags, an absent value)."""
    return {
        "round": server_round,
        "central_accuracy": accuracy,
        "central_loss": 1.0 - accuracy,
        "train_loss": None,
        "failed_nodes": [],
        "kept_previous_model": False,
        "bytes_up": 1000 * server_round,
        **extra,
    }


def test_tracking_keys_are_validated_in_one_line() -> None:
    assert build().trackers == ()
    assert build(tracking="tensorboard, mlflow").trackers == ("tensorboard", "mlflow")
    assert build(tracking="mlflow", tracking_uri="http://127.0.0.1:5000").tracking_uri == "http://127.0.0.1:5000"
    refusals = {
        "'tracking' = 'wandb' is not allowed; allowed: 'none' or a comma list of tensorboard, mlflow": {
            "tracking": "wandb"
        },
        "'tracking' = 'mlflow,mlflow' is not allowed": {"tracking": "mlflow,mlflow"},
        "'tracking-uri' = 'http://h:5000' is not allowed; allowed: ''": {"tracking_uri": "http://h:5000"},
        "'tracking-uri' = 'mlflow.db' is not allowed": {"tracking": "mlflow", "tracking_uri": "mlflow.db"},
        "'tracking-experiment' = '' is not allowed": {"tracking_experiment": ""},
    }
    for message, changes in refusals.items():
        with pytest.raises(ConfigError, match=f"^run-config key {message}") as raised:
            build(**changes)
        assert "\n" not in str(raised.value)


def test_a_missing_tracking_package_fails_before_anything_starts_saying_how_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real_find_spec(name)
    )
    check_installed(build(tracking="tensorboard"))
    with pytest.raises(ConfigError, match="needs the package 'mlflow', which is not installed; install the extra"):
        check_installed(build(tracking="tensorboard,mlflow"))
    assert sim_main.main(["run", "-c", "tracking=mlflow"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().splitlines() == [
        "error: run-config key 'tracking' = 'mlflow' needs the package 'mlflow', which is not installed; install "
        "the extra with `make tracking` (or `.venv/bin/pip install -e '.[tracking]'` in the project folder)"
    ]


def test_round_records_become_scalars_under_their_metrics_json_keys() -> None:
    scalars = round_scalars(record(2, 0.5, epsilon=float("nan"), rejected_updates=[{"node": "a"}], seconds=1.5))
    assert scalars == {
        "central_accuracy": 0.5,
        "central_loss": 0.5,
        "kept_previous_model": 0.0,
        "bytes_up": 2000.0,
        "seconds": 1.5,
    }


def test_mlflow_local_store_and_relative_sqlite_paths_resolve_where_the_user_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert absolute_tracking_uri("", tmp_path) == f"sqlite:///{tmp_path}/mlflow.db"
    assert absolute_tracking_uri("sqlite:///runs/t.db", tmp_path) == f"sqlite:///{tmp_path}/runs/t.db"
    assert absolute_tracking_uri("sqlite:////srv/t.db", tmp_path) == "sqlite:////srv/t.db"
    assert absolute_tracking_uri("http://h:5000", tmp_path) == "http://h:5000"
    monkeypatch.chdir(tmp_path)
    extra = {"output-dir": str(tmp_path / "outputs"), "tracking": "tensorboard,mlflow"}
    assert RunRequest.build(APP_DIR, [], extra=extra).config.tracking_uri == f"sqlite:///{tmp_path}/mlflow.db"
    assert RunRequest.build(APP_DIR, [], extra={**extra, "tracking": "tensorboard"}).config.tracking_uri == ""


def test_output_dirs_that_cannot_hold_a_run_folder_are_refused_and_the_check_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    for bad, reason in (("/proc/x", "No such file or directory"), (str(tmp_path / "a-file" / "sub"), "not a folder")):
        with pytest.raises(ConfigError, match=f"'output-dir' = '{bad}' cannot be created or written.*{reason}"):
            check_output_dir(bad)
    check_output_dir(str(tmp_path / "new" / "deeper"))
    check_output_dir(str(tmp_path))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a-file"]


def test_a_checkpoint_keeps_the_tracked_runs_it_logs_to(tmp_path: Path) -> None:
    identity = {"tensorboard": {"logdir": "/x"}, "mlflow": {"tracking_uri": "sqlite:////x.db", "run_id": "abc"}}
    checkpoint = Checkpoint(1, build().to_mapping(), ArrayRecord(), {}, [{"round": 0}], [2], identity)
    write_checkpoint(tmp_path / "checkpoint.pt", checkpoint)
    assert read_checkpoint(tmp_path / "checkpoint.pt").tracking == identity


def test_a_resumed_run_opens_the_tracked_runs_its_checkpoint_names_and_passes_them_on(tmp_path: Path) -> None:
    """The ServerApp's wiring: checkpoint -> sinks -> metrics.json header -> the next checkpoint."""
    first = build(tracking="tensorboard", output_dir=str(tmp_path), run_name="first")
    outputs = RunOutputs.create(first, 1)
    tracker = server_app._open_tracker(first, outputs, None)
    identity = {"tensorboard": {"logdir": str(tmp_path / "first")}}
    assert tracker.identity == outputs.header["tracking"] == identity
    for server_round in (0, 1):
        outputs.save_checkpoint(record(server_round, 0.1 * server_round), ArrayRecord(), {})
        outputs.add_round(record(server_round, 0.1 * server_round))
        tracker.log_round(outputs.rounds[-1])
    tracker.finish([], completed=False)

    resumed_config = build(
        tracking="tensorboard", output_dir=str(tmp_path), run_name="second", resume_from=str(outputs.folder)
    )
    checkpoint = resume_point(resumed_config)
    assert checkpoint is not None and checkpoint.tracking == identity
    resumed = RunOutputs.create(resumed_config, 2, checkpoint)
    tracker = server_app._open_tracker(resumed_config, resumed, checkpoint)
    assert tracker.identity == resumed.header["tracking"] == identity
    resumed.save_checkpoint(record(2, 0.2), ArrayRecord(), {})
    resumed.add_round(record(2, 0.2))
    tracker.log_round(resumed.rounds[-1])
    tracker.finish([], completed=True)
    assert read_checkpoint(resumed.folder / "checkpoint.pt").tracking == identity
    assert [step for step, _ in _tensorboard_scalars(outputs.folder, "central_accuracy")] == [0, 1, 2]


def _tensorboard_scalars(logdir: Path, tag: str) -> list[tuple[int, float]]:
    accumulator = event_accumulator.EventAccumulator(str(logdir), size_guidance={event_accumulator.SCALARS: 0})
    accumulator.Reload()
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


def _tensorboard_hparams(logdir: Path) -> dict[str, Any]:
    accumulator = plugin_accumulator.EventAccumulator(str(logdir))
    accumulator.Reload()
    content = accumulator.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    return {key: value.string_value or value.number_value for key, value in hparams.items()}


def test_tensorboard_logs_config_and_rounds_and_a_resume_continues_the_same_log_folder(tmp_path: Path) -> None:
    config = build(tracking="tensorboard", run_name="first")
    first = tmp_path / "first"
    first.mkdir()
    tracker = open_tracker(TrackedRun(config, "first", first))
    assert tracker.identity == {"tensorboard": {"logdir": str(first)}}
    for server_round in range(3):
        tracker.log_round(record(server_round, 0.1 * server_round))
    tracker.finish([], completed=False)  # say the run died after logging round 2, checkpointed up to round 1

    resumed = tmp_path / "resumed"
    resumed.mkdir()
    history = [record(0, 0.0), record(1, 0.1)]
    tracker = open_tracker(TrackedRun(build(tracking="tensorboard"), "resumed", resumed, tracker.identity, history))
    assert tracker.identity == {"tensorboard": {"logdir": str(first)}}
    for server_round in (2, 3):
        tracker.log_round(record(server_round, 0.5 + server_round / 10))
    tracker.finish([], completed=True)

    logged = _tensorboard_scalars(first, "central_accuracy")
    assert [step for step, _ in logged] == [0, 1, 2, 3]
    assert [value for _, value in logged] == pytest.approx([0.0, 0.1, 0.7, 0.8])
    assert _tensorboard_scalars(first, "bytes_up") == [(0, 0.0), (1, 1000.0), (2, 2000.0), (3, 3000.0)]
    assert not list(resumed.iterdir())
    hparams = _tensorboard_hparams(first)
    assert hparams["strategy"] == "fedavg" and hparams["run-name"] == "first" and hparams["seed"] == 0
    assert set(hparams) == set(DEFAULTS)


def test_mlflow_logs_params_rounds_and_files_and_a_resume_continues_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the default store, `mlflow.db`, is where relative paths resolve
    config = build(tracking="mlflow", tracking_experiment="unit")
    folder = tmp_path / "first"
    folder.mkdir()
    tracker = open_tracker(TrackedRun(config, "first", folder))
    identity = tracker.identity["mlflow"]
    assert identity["tracking_uri"] == f"sqlite:///{tmp_path}/mlflow.db"
    for server_round in range(2):
        tracker.log_round(record(server_round, 0.1 * server_round))
    history = [record(0, 0.0), record(1, 0.1), record(2, 0.2)]  # round 2 checkpointed, then the run was killed
    (folder / "metrics.json").write_text("{}")
    tracker.finish([folder / "metrics.json", folder / "absent.png"], completed=False)

    client = MlflowClient(identity["tracking_uri"])
    run = client.get_run(identity["run_id"])
    assert (run.info.run_name, run.info.status) == ("first", "FAILED")
    assert run.data.params == {key: str(value) for key, value in config.to_mapping().items()}
    assert [artifact.path for artifact in client.list_artifacts(identity["run_id"])] == ["metrics.json"]
    assert (tmp_path / "mlartifacts").is_dir()

    resumed = build(tracking="mlflow", tracking_experiment="unit", num_server_rounds=20)
    tracker = open_tracker(TrackedRun(resumed, "resumed", tmp_path, {"mlflow": identity}, history))
    assert tracker.identity["mlflow"] == identity
    tracker.log_round(record(3, 0.3))
    tracker.finish([], completed=True)
    run = client.get_run(identity["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["resumed.num-server-rounds"] == "20"
    steps = [(m.step, m.value) for m in client.get_metric_history(identity["run_id"], "central_accuracy")]
    assert sorted(steps) == [(0, 0.0), (1, 0.1), (2, 0.2), (3, 0.3)]

    again = open_tracker(TrackedRun(resumed, "again", tmp_path, {"mlflow": identity}, history))
    assert again.identity["mlflow"]["run_id"] != identity["run_id"]  # the run went past round 2: a new one
    new_steps = client.get_metric_history(again.identity["mlflow"]["run_id"], "central_accuracy")
    assert sorted(m.step for m in new_steps) == [0, 1, 2]
    again.finish([], completed=True)


def test_an_unreachable_mlflow_server_fails_the_run_at_once_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    config = build(tracking="mlflow", tracking_uri="http://127.0.0.1:9")
    with pytest.raises(
        ConfigError, match=r"^run-config key 'tracking-uri' = 'http://127.0.0.1:9': MLflow at .* cannot"
    ):
        open_tracker(TrackedRun(config, "x", tmp_path))
