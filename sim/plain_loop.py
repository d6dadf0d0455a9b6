"""The compute floor of a federated run: the same local work in one plain PyTorch process.

`python -m sim bench` compares every simulation with this loop. Round by round it
does what the simulated nodes and the ServerApp do, with nothing in between: each
node (all of them, in key order) trains from the global weights with the same
partition, batch size, number of SGD steps and data order (`Node`, `train_sgd`),
the models are averaged with FedAvg's weights, and the server evaluates the result
on the test set (`CentralEvaluator`). When `fraction-evaluate` > 0 every node also
evaluates each global model on its validation split, when the simulation does: with
`federated-evaluation = "with-train"` right before training from it (and once more
after the last round), with `separate` right after it is made. Round 0 is the initial
central evaluation, as in `metrics.json`.

It runs as its own process (`python -m sim.plain_loop CONFIG.json NODES OUT.json`),
so its whole-run time includes the interpreter and torch start-up like a simulation's.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from flwr.app import ArrayRecord

from fedapp.client_app import Node
from fedapp.config import ConfigError, RunConfig
from fedapp.evaluation import CentralEvaluator, initial_arrays
from fedapp.training import evaluate, train_sgd
from strategies.aggregation import aggregation_weights, weighted_average
from strategies.schedule import round_learning_rate


@dataclass(frozen=True)
class LoopResult:
    """Seconds and central accuracy of rounds 0, 1, ..., N of the plain loop, and its peak resident memory."""

    round_seconds: list[float]
    central_accuracy: list[float]
    peak_rss_bytes: int


def plain_loop(config: RunConfig, num_nodes: int) -> LoopResult:
    """Play `config.num_server_rounds` rounds of FedAvg over `num_nodes` nodes in this process."""
    if config.strategy != "fedavg" or config.fraction_train != 1.0 or config.fraction_evaluate not in (0.0, 1.0):
        raise ConfigError(
            "the plain loop reproduces strategy 'fedavg' with fraction-train = 1.0 and fraction-evaluate 0 or 1; "
            f"got strategy={config.strategy!r}, fraction-train={config.fraction_train}, "
            f"fraction-evaluate={config.fraction_evaluate}"
        )
    nodes = [Node.for_partition(config, partition_id, num_nodes) for partition_id in range(num_nodes)]
    evaluator = CentralEvaluator(config)
    started = time.monotonic()
    global_state = initial_arrays(config).to_torch_state_dict()
    accuracy = [evaluator(ArrayRecord(global_state))[1]]
    seconds = [time.monotonic() - started]
    for server_round in range(1, config.num_server_rounds + 1):
        started = time.monotonic()
        global_state = _train_round(nodes, global_state, server_round, config.evaluates_with_train)
        if config.fraction_evaluate > 0 and not config.evaluates_with_train:
            _evaluate_everywhere(nodes, global_state)
        accuracy.append(evaluator(ArrayRecord(global_state))[1])
        seconds.append(time.monotonic() - started)
    if config.evaluates_with_train:
        _evaluate_everywhere(nodes, global_state)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return LoopResult(round_seconds=seconds, central_accuracy=accuracy, peak_rss_bytes=peak_kib * 1024)


def _evaluate_everywhere(nodes: list[Node], global_state: dict[str, torch.Tensor]) -> None:
    """Every node evaluates `global_state` on its validation split (federated evaluation)."""
    for node in nodes:
        evaluate(node.model(ArrayRecord(global_state)), node.data().validation)


def _train_round(
    nodes: list[Node], global_state: dict[str, torch.Tensor], server_round: int, evaluate_first: bool
) -> dict[str, torch.Tensor]:
    """Train every node from `global_state` (evaluating it first if asked); return the FedAvg average."""
    models, examples = [], []
    for node in nodes:
        if evaluate_first:
            evaluate(node.model(ArrayRecord(global_state)), node.data().validation)
        model = node.model(ArrayRecord(global_state))
        result = train_sgd(
            model,
            node.data().train,
            epochs=node.config.local_epochs,
            batch_size=node.config.batch_size,
            learning_rate=round_learning_rate(node.config.learning_rate, node.config.lr_decay, server_round),
            generator=node.generator("train", server_round),
        )
        models.append({key: value.detach().numpy().copy() for key, value in model.state_dict().items()})
        examples.append(result.examples)
    averaged = weighted_average(models, aggregation_weights(examples, nodes[0].config.weighting))
    return {key: torch.from_numpy(value) for key, value in averaged.items()}


def main(argv: list[str]) -> int:
    """`python -m sim.plain_loop CONFIG.json NODES OUT.json`: run the loop, write its result."""
    config_path, num_nodes, out_path = argv
    config = RunConfig.from_mapping(json.loads(Path(config_path).read_text()))
    result = plain_loop(config, int(num_nodes))
    Path(out_path).write_text(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
