"""A plain Flower ServerApp: any strategy of ours under Flower's own `Strategy.start`.

This is how our strategies run in any Flower app: build one, hand it Flower's grid,
and call `start`. With fedapp's ClientApp it trains as usual; select it with
`serverapp = "fedapp.flower_server_app:app"` in `[tool.flwr.app.components]`.

What fedapp's federation loop (`server_app.py`) adds is absent here: nodes are not
described, so the nodes are listed in Flower's order (seeded sampling draws the same
positions, not the same nodes; under DP the sample is always secret, since the app
cannot tell whether the nodes hold their own data) and FedMD never sends the server's
weights to a node; replies are not screened; seeded DP noise is refused only by the
nodes with their own data, and no privacy budget stops the run; there are no
checkpoints, no resume, no per-round metrics.json or plot (FD's and FedMD's
client-model accuracies appear only in Flower's aggregated train metrics,
`test-accuracy`, and FD's central evaluation scores the unchanged initial model: FD
has none of its own), no tracking (`tracking` is ignored, with a warning); the client
learning rate does not decay; a round whose replies all fail ends the run (Flower
raises). The run writes
Flower's `Result` (`flower_result.json`) and the final model (`final_model.pt`) to
`<output-dir>/<run-name or run-id>/`.
"""

from __future__ import annotations

import json
from logging import INFO, WARNING
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.common import log
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import Result

from fedapp.atomic import atomic_write_text
from fedapp.checkpoint import atomic_torch_save
from fedapp.config import RunConfig
from fedapp.evaluation import central_evaluator, initial_arrays
from fedapp.outputs import MODEL_FILE, resolve_run_folder
from fedapp.strategy_factory import build_strategy
from strategies.protocol import LEARNING_RATE, LOCAL_EPOCHS

RESULT_FILE = "flower_result.json"

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run `num-server-rounds` rounds of the configured strategy with `Strategy.start`."""
    config = RunConfig.from_mapping(context.run_config)
    if config.trackers:
        log(
            WARNING,
            "[fedapp] tracking=%s is ignored: this ServerApp logs no rounds (fedapp.server_app does)",
            config.tracking,
        )
    evaluator = central_evaluator(config)

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:  # noqa: ARG001 (Flower's signature)
        metrics = evaluator(arrays) if evaluator is not None else {}
        return MetricRecord({f"central_{name}": value for name, value in metrics.items() if value is not None})

    result = build_strategy(config).start(
        grid=grid,
        initial_arrays=initial_arrays(config),
        num_rounds=config.num_server_rounds,
        timeout=config.round_timeout,
        train_config=ConfigRecord({LEARNING_RATE: config.learning_rate, LOCAL_EPOCHS: config.local_epochs}),
        evaluate_fn=evaluate if evaluator is not None else None,
    )
    folder = resolve_run_folder(config, context.run_id)
    save_result(folder, result)
    log(INFO, "[fedapp] wrote %s and %s", folder / RESULT_FILE, folder / MODEL_FILE)


def save_result(folder: Path, result: Result) -> None:
    """Write Flower's per-round metrics as JSON and the final global weights as a state_dict."""
    history = {
        "train_metrics_clientapp": _by_round(result.train_metrics_clientapp),
        "evaluate_metrics_clientapp": _by_round(result.evaluate_metrics_clientapp),
        "evaluate_metrics_serverapp": _by_round(result.evaluate_metrics_serverapp),
    }
    atomic_write_text(folder / RESULT_FILE, json.dumps(history, indent=1) + "\n")
    atomic_torch_save(folder / MODEL_FILE, result.arrays.to_torch_state_dict())


def _by_round(records: dict[int, MetricRecord]) -> dict[str, dict[str, float]]:
    """Flower's metric records keyed by round, as JSON-ready dicts."""
    return {str(server_round): dict(record) for server_round, record in records.items()}  # type: ignore[misc]
