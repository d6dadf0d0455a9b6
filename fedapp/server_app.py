"""fedapp's ServerApp: validate the run config, build (or resume) the strategy, run the federation, save outputs."""

from __future__ import annotations

from logging import ERROR, INFO
from pathlib import Path

from flwr.app import Context
from flwr.common import log
from flwr.serverapp import Grid, ServerApp
from flwr.superlink.grid import InMemoryGrid

from fedapp import tasks
from fedapp.checkpoint import Checkpoint, resume_point
from fedapp.config import ConfigError, RunConfig
from fedapp.data import DataError
from fedapp.dispatch_index import index_simulation_state
from fedapp.evaluation import CENTRAL_OFF, central_evaluator, initial_arrays
from fedapp.federation import Federation
from fedapp.models import ModelError
from fedapp.nodes import NodeDirectory, quick_reply_pulls
from fedapp.outputs import METRICS_FILE, RunOutputs
from fedapp.strategy_factory import build_strategy
from fedapp.tracking import TrackedRun, Trackers, check_installed, open_tracker
from strategies.builtin import hooks_for

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run a whole federated training job and write its outputs."""
    try:
        config = RunConfig.from_mapping(context.run_config)
        check_installed(config)
        evaluator = central_evaluator(config)
        arrays = initial_arrays(config)
        resumed = resume_point(config)
        outputs = RunOutputs.create(config, context.run_id, resumed)
        tracker = _open_tracker(config, outputs, resumed)
    except (ConfigError, DataError, ModelError) as error:
        log(ERROR, "[fedapp] invalid run config: %s", error)
        raise
    log(INFO, "[fedapp] writing outputs to %s", outputs.folder)
    if not isinstance(grid, InMemoryGrid):
        quick_reply_pulls()
    elif config.simulation_fast_path and index_simulation_state(grid) is not None:
        log(INFO, "[fedapp] simulation fast path: shared arrays once per worker process, indexed message dispatch")
    if evaluator is None:
        outputs.header["central_evaluation"] = CENTRAL_OFF
        log(INFO, "[fedapp] central evaluation %s", CENTRAL_OFF)
    if not Path(config.output_dir).expanduser().is_absolute():
        log(
            INFO,
            "[fedapp] output-dir %r is relative to %s, the folder the SuperLink runs in (docs/tracking.md)",
            config.output_dir,
            Path.cwd(),
        )
    directory = NodeDirectory(grid, config.round_timeout)
    strategy = build_strategy(config, directory)
    if resumed is not None:
        log(INFO, "[fedapp] resuming %s after round %d", config.resume_from, resumed.server_round)
        hooks_for(strategy).load_state_dict(resumed.strategy_state)
    federation = Federation(grid, directory, strategy, config, evaluator, outputs, tracker)
    completed, files = False, [outputs.folder / METRICS_FILE]
    try:
        final_arrays = federation.run(arrays, resumed)
        files += [outputs.save_model(final_arrays), outputs.save_plot()]
        completed = True
    except ConfigError as error:
        log(ERROR, "[fedapp] refused for these nodes: %s", error)
        raise
    finally:
        tracker.finish(files, completed)
    final = outputs.rounds[-1]
    prefix = "central" if evaluator is not None else "federated"
    log(
        INFO,
        "[fedapp] done: final %s; wrote %s",
        ", ".join(tasks.describe(prefix, config.task, final)),
        ", ".join(str(path) for path in files),
    )


def _open_tracker(config: RunConfig, outputs: RunOutputs, resumed: Checkpoint | None) -> Trackers:
    """Open the run's tracking sinks (continuing the resumed run's) and note them in its outputs."""
    run = TrackedRun(
        config,
        outputs.folder.name,
        outputs.folder,
        resumed.tracking if resumed is not None else {},
        resumed.rounds if resumed is not None else [],
    )
    tracker = open_tracker(run)
    outputs.record_tracking(tracker.identity)
    return tracker
