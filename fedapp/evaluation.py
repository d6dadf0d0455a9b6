"""Central evaluation: the server scores the global model on the held-out test set."""

from __future__ import annotations

from flwr.app import ArrayRecord

from fedapp.config import RunConfig
from fedapp.data import data_source, dataset_shape, load_test_split
from fedapp.device import compute_device
from fedapp.models import build_model
from fedapp.training import evaluate


def initial_arrays(config: RunConfig) -> ArrayRecord:
    """The global model before round 1: `config.model` initialized from the run seed."""
    shape, num_classes = dataset_shape(config.dataset)
    return ArrayRecord(build_model(config.model, shape, num_classes, config.seed).state_dict())


class CentralEvaluator:
    """Evaluates global weights on the dataset's held-out test set (never seen by clients)."""

    def __init__(self, config: RunConfig) -> None:
        shape, num_classes = dataset_shape(config.dataset)
        self.model = build_model(config.model, shape, num_classes, config.seed)
        self.test_set = load_test_split(data_source(config))
        self.device = compute_device()

    def __call__(self, arrays: ArrayRecord) -> tuple[float, float]:
        """Return (loss, accuracy) of `arrays` on the test set."""
        self.model.load_state_dict(arrays.to_torch_state_dict())
        return evaluate(self.model, self.test_set, self.device)
