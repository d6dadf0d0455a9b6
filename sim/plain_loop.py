"""The compute floor of a federated run: the same local work in plain PyTorch processes.

`python -m sim bench` compares every simulation with this loop. Round by round it
does what the simulated nodes and the ServerApp do, with nothing in between: each
node (all of them, in key order) trains from the global weights with the same
partition, batch size, number of SGD steps and data order (`Node`, `train_sgd`),
the models are averaged with FedAvg's weights, every node evaluates the result on
its validation split when `fraction-evaluate` > 0, and the server evaluates it on
the test set (`CentralEvaluator`). Round 0 is the initial central evaluation, as in
`metrics.json`.

The nodes' work is spread over `workers` processes with one torch thread each, node
i always in worker i mod `workers`, as the simulation spreads clients over its Ray
actors (one per CPU with the `cpu` preset); the averaging and central evaluation run
in the main process, as in the simulation's ServerApp. Both sides then compete for
the cores the same way, so their ratio holds on a shared machine. The result does not
depend on `workers`: each node's training is seeded by node and round, and the
average is taken in node order.

A simulation with `federated-evaluation = "with-train"` evaluates each global model at
the start of the next round instead of at the end of its own: the same work per round
in the steady state, so the loop always evaluates at the end.

It runs as its own process (`python -m sim.plain_loop CONFIG.json NODES OUT.json
[WORKERS]`), so its whole-run time includes the interpreter, torch and worker start-up
like a simulation's.
"""

from __future__ import annotations

import json
import multiprocessing
import resource
import sys
import time
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord

from fedapp.client_app import Node
from fedapp.config import ConfigError, RunConfig
from fedapp.evaluation import CentralEvaluator, initial_arrays
from fedapp.training import evaluate, train_sgd
from strategies.aggregation import aggregation_weights, weighted_average
from strategies.schedule import round_learning_rate

State = dict[str, np.ndarray]


@dataclass(frozen=True)
class LoopResult:
    """Seconds and central accuracy of rounds 0, 1, ..., N of the plain loop, and its main process's peak memory."""

    round_seconds: list[float]
    central_accuracy: list[float]
    peak_rss_bytes: int


def plain_loop(config: RunConfig, num_nodes: int, workers: int = 1) -> LoopResult:
    """Play `config.num_server_rounds` rounds of FedAvg over `num_nodes` nodes, in `workers` processes."""
    if config.strategy != "fedavg" or config.fraction_train != 1.0 or config.fraction_evaluate not in (0.0, 1.0):
        raise ConfigError(
            "the plain loop reproduces strategy 'fedavg' with fraction-train = 1.0 and fraction-evaluate 0 or 1; "
            f"got strategy={config.strategy!r}, fraction-train={config.fraction_train}, "
            f"fraction-evaluate={config.fraction_evaluate}"
        )
    with _Workers(config, num_nodes, workers) as pool:
        evaluator = CentralEvaluator(config)
        started = time.monotonic()
        global_state = _numpy(initial_arrays(config).to_torch_state_dict())
        accuracy = [evaluator(_record(global_state))["accuracy"]]
        seconds = [time.monotonic() - started]
        for server_round in range(1, config.num_server_rounds + 1):
            started = time.monotonic()
            replies = sorted(pool.ask("train", global_state, server_round))
            models = [weights for _, _, weights in replies]
            global_state = weighted_average(models, aggregation_weights([n for _, n, _ in replies], config.weighting))
            if config.fraction_evaluate > 0:
                pool.ask("evaluate", global_state, server_round)
            accuracy.append(evaluator(_record(global_state))["accuracy"])
            seconds.append(time.monotonic() - started)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return LoopResult(round_seconds=seconds, central_accuracy=accuracy, peak_rss_bytes=peak_kib * 1024)


def _numpy(state: dict[str, torch.Tensor]) -> State:
    return {key: value.detach().numpy().copy() for key, value in state.items()}


def _record(state: State) -> ArrayRecord:
    return ArrayRecord({key: torch.from_numpy(value) for key, value in state.items()})


class _Workers:
    """`count` worker processes, each serving the nodes i with i mod count == its index (in-process when count is 1)."""

    def __init__(self, config: RunConfig, num_nodes: int, count: int) -> None:
        self.config = config
        self.num_nodes = num_nodes
        self.shares = [list(range(index, num_nodes, count)) for index in range(max(1, count))]
        self.pipes: list[Connection] = []
        self.processes: list[multiprocessing.process.BaseProcess] = []
        self.local: _Share | None = None

    def __enter__(self) -> _Workers:
        if len(self.shares) == 1:
            self.local = _Share(self.config.to_mapping(), self.shares[0], self.num_nodes)
            return self
        context = multiprocessing.get_context("spawn")  # no fork of a process that may have run OpenMP threads
        for share in self.shares:
            ours, theirs = context.Pipe()
            arguments = (theirs, self.config.to_mapping(), share, self.num_nodes)
            process = context.Process(target=_serve, args=arguments, daemon=True)
            process.start()
            self.pipes.append(ours)
            self.processes.append(process)
        return self

    def ask(self, command: str, state: State, server_round: int) -> list[Any]:
        """Have every worker run `command` on its nodes; return their answers, all together."""
        if self.local is not None:
            return self.local.run(command, state, server_round)
        for pipe in self.pipes:
            pipe.send((command, state, server_round))
        return [answer for pipe in self.pipes for answer in pipe.recv()]

    def __exit__(self, *_: object) -> None:
        for pipe in self.pipes:
            pipe.send(None)
        for process in self.processes:
            process.join(timeout=30)


class _Share:
    """A worker's nodes: trains or evaluates each of them from the global weights it is sent."""

    def __init__(self, mapping: dict[str, Any], partitions: list[int], num_nodes: int) -> None:
        config = RunConfig.from_mapping(mapping)
        self.nodes = [Node.for_partition(config, partition, num_nodes) for partition in partitions]

    def run(self, command: str, state: State, server_round: int) -> list[Any]:
        """`train`: (partition, examples, new weights) per node; `evaluate`: every node evaluates `state`."""
        if command == "evaluate":
            for node in self.nodes:
                evaluate(node.model(_record(state)), node.data().validation)
            return []
        return [self._train(node, state, server_round) for node in self.nodes]

    @staticmethod
    def _train(node: Node, state: State, server_round: int) -> tuple[int, int, State]:
        model = node.model(_record(state))
        result = train_sgd(
            model,
            node.data().train,
            epochs=node.config.local_epochs,
            batch_size=node.config.batch_size,
            learning_rate=round_learning_rate(node.config.learning_rate, node.config.lr_decay, server_round),
            generator=node.generator("train", server_round),
            momentum=node.config.client_momentum,
        )
        return node.partition_id, result.examples, _numpy(model.state_dict())


def _serve(pipe: Connection, mapping: dict[str, Any], partitions: list[int], num_nodes: int) -> None:
    """A worker process: one torch thread, its nodes, commands from `pipe` until None."""
    torch.set_num_threads(1)
    share = _Share(mapping, partitions, num_nodes)
    while (request := pipe.recv()) is not None:
        pipe.send(share.run(*request))


def main(argv: list[str]) -> int:
    """`python -m sim.plain_loop CONFIG.json NODES OUT.json [WORKERS]`: run the loop, write its result."""
    config_path, num_nodes, out_path, *rest = argv
    config = RunConfig.from_mapping(json.loads(Path(config_path).read_text()))
    result = plain_loop(config, int(num_nodes), int(rest[0]) if rest else 1)
    Path(out_path).write_text(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
