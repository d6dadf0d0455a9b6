"""How honest updates sit around their round's median: cosine with the median update, norm over the median norm.

The probe behind docs/robustness.md's reading of sign-flip: FedAvg, the 2NN, 10 honest nodes split by
Dirichlet(alpha), every node sampled, in-process through the real ClientApp (no Flower run), for each seed.
Prints per round the lowest cosine of an honest update with the round's coordinate-wise median update and the
largest norm ratio, then per seed the minimum cosine and the first round with a negative one.
Usage: .venv/bin/python docs/results/honest-update-geometry.py ALPHA ROUNDS SEED [SEED ...]
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from flwr.app import ConfigRecord
from flwr.supercore.task_identity import TaskIdentity

from fedapp.config import RunConfig
from fedapp.strategy_factory import build_strategy
from strategies.aggregation import is_parameter
from strategies.arrays import reply_arrays, to_numpy
from strategies.protocol import LEARNING_RATE, LOCAL_EPOCHS, SERVER_ROUND
from tests.helpers import FakeGrid, answer, initial, run_config

NODES = 10


def probe(alpha: float, rounds: int, seed: int, patch: pytest.MonkeyPatch) -> list[tuple[float, float]]:
    """Per round: (lowest cosine with the median update, largest norm / median norm) of the honest updates."""
    raw = run_config(partitioner="dirichlet", dirichlet_alpha=alpha, seed=seed, fraction_evaluate=0.0)
    config = RunConfig.from_mapping(raw)
    strategy = build_strategy(config)
    grid = FakeGrid(list(range(1, NODES + 1)))
    arrays, found = initial(), []
    for server_round in range(1, rounds + 1):
        instructions = {SERVER_ROUND: server_round, LEARNING_RATE: config.learning_rate, LOCAL_EPOCHS: 1}
        sent = list(strategy.configure_train(server_round, arrays, ConfigRecord(instructions), grid))
        replies = answer(sent, raw, patch, NODES)
        start = to_numpy(arrays)
        keys = [key for key in start if is_parameter(start[key])]
        updates = np.stack(
            [np.concatenate([(reply_arrays(r.content)[k] - start[k]).ravel() for k in keys]) for r in replies]
        )
        median = np.median(updates, axis=0)
        norms = np.linalg.norm(updates, axis=1)
        cosines = updates @ median / (norms * np.linalg.norm(median))
        found.append((float(cosines.min()), float(norms.max() / np.median(norms))))
        arrays, _ = strategy.aggregate_train(server_round, replies)
    return found


def main(alpha: float, rounds: int, seeds: list[int]) -> None:
    patch = pytest.MonkeyPatch()
    for name, value in (("_run_id", 1), ("_task_id", 1), ("_node_id", 0)):
        patch.setattr(TaskIdentity, name, value)
    for seed in seeds:
        found = probe(alpha, rounds, seed, patch)
        for server_round, (cosine, ratio) in enumerate(found, start=1):
            print(f"seed {seed} round {server_round}: lowest cosine {cosine:.3f}, largest norm/median {ratio:.2f}")
        negative = [r for r, (cosine, _) in enumerate(found, start=1) if cosine < 0]
        print(
            f"seed {seed}: lowest cosine {min(c for c, _ in found):.3f}, largest norm/median "
            f"{max(r for _, r in found):.2f}, first round with a negative cosine: {negative[0] if negative else None}"
        )


if __name__ == "__main__":
    main(float(sys.argv[1]), int(sys.argv[2]), [int(seed) for seed in sys.argv[3:]])
