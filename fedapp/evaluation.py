"""Central evaluation: the server scores the global model on the held-out test set.

A run whose server holds no data (`dataset = "none"`: edge nodes bring their own)
has no central evaluation; its `metrics.json` says so (`CENTRAL_OFF`) and its rounds
carry the nodes' federated metrics only.
"""

from __future__ import annotations

from flwr.app import ArrayRecord
from torch import nn

from fedapp import tasks
from fedapp.config import NO_DATASET, RunConfig
from fedapp.data import Schema, data_source, load_test_split, run_schema
from fedapp.device import compute_device
from fedapp.models import build_model
from fedapp.training import evaluate

CENTRAL_OFF = (
    "off: dataset = 'none', so the server holds no test data; the rounds report the nodes' federated "
    "evaluation (federated_*) only"
)


def run_model(config: RunConfig, schema: Schema, name: str | None = None) -> nn.Module:
    """Model `name` (default: the run's `model`) for the run's data, initialized from the run seed."""
    architecture = config.model if name is None else name
    return build_model(architecture, schema.input_shape, schema.num_outputs, config.seed, config.hidden_layer_sizes)


def initial_arrays(config: RunConfig) -> ArrayRecord:
    """The global model before round 1: `config.model` for the run's data, initialized from the run seed."""
    return ArrayRecord(run_model(config, run_schema(config)).state_dict())


class CentralEvaluator:
    """Evaluates global weights on the dataset's held-out test set (never seen by clients)."""

    def __init__(self, config: RunConfig) -> None:
        self.task = config.task
        self.model = run_model(config, run_schema(config))
        self.test_set = load_test_split(data_source(config))
        self.device = compute_device()

    def __call__(self, arrays: ArrayRecord) -> dict[str, float | None]:
        """The task's metrics of `arrays` on the test set (`accuracy`, `loss`; or `loss`, `rmse`, `mae`, `r2`)."""
        self.model.load_state_dict(arrays.to_torch_state_dict())
        return tasks.summary(self.task, evaluate(self.model, self.test_set, self.device))


def central_evaluator(config: RunConfig) -> CentralEvaluator | None:
    """The run's central evaluator, or None when the server holds no data (`dataset = "none"`)."""
    return None if config.dataset == NO_DATASET else CentralEvaluator(config)
