"""fedapp's ServerApp: validate the run config, build (or resume) the strategy, run the federation, save outputs."""

from __future__ import annotations

from logging import ERROR, INFO

from flwr.app import Context
from flwr.common import log
from flwr.serverapp import Grid, ServerApp
from flwr.superlink.grid import InMemoryGrid

from fedapp.checkpoint import resume_point
from fedapp.config import ConfigError, RunConfig
from fedapp.dispatch_index import index_simulation_state
from fedapp.evaluation import CentralEvaluator, initial_arrays
from fedapp.federation import Federation
from fedapp.nodes import NodeDirectory, quick_reply_pulls
from fedapp.outputs import RunOutputs
from fedapp.strategy_factory import build_strategy
from strategies.builtin import hooks_for

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run a whole federated training job and write its outputs."""
    try:
        config = RunConfig.from_mapping(context.run_config)
        resumed = resume_point(config)
        outputs = RunOutputs.create(config, context.run_id, resumed)
    except ConfigError as error:
        log(ERROR, "[fedapp] invalid run config: %s", error)
        raise
    log(INFO, "[fedapp] writing outputs to %s", outputs.folder)
    if not isinstance(grid, InMemoryGrid):
        quick_reply_pulls()
    elif config.simulation_fast_path and index_simulation_state(grid) is not None:
        log(INFO, "[fedapp] simulation fast path: shared arrays once per worker process, indexed message dispatch")
    directory = NodeDirectory(grid, config.round_timeout)
    strategy = build_strategy(config, directory)
    if resumed is not None:
        log(INFO, "[fedapp] resuming %s after round %d", config.resume_from, resumed.server_round)
        hooks_for(strategy).load_state_dict(resumed.strategy_state)
    federation = Federation(grid, directory, strategy, config, CentralEvaluator(config), outputs)
    try:
        final_arrays = federation.run(initial_arrays(config), resumed)
    except ConfigError as error:
        log(ERROR, "[fedapp] refused for these nodes: %s", error)
        raise
    model_path = outputs.save_model(final_arrays)
    plot_path = outputs.save_plot()
    final = outputs.rounds[-1]
    log(
        INFO,
        "[fedapp] done: final central accuracy %.4f; wrote %s, %s and %s",
        final["central_accuracy"],
        outputs.folder / "metrics.json",
        model_path,
        plot_path,
    )
