"""Logical clients (issue 26): packing clients onto fewer messages changes no figure of a run.

Each strategy runs twice through `flwr run` with the same seed: one message per client
(`clients-per-node=1`) and 3 clients per simulated SuperNode (5 clients: hosts of 3
and 2); FedAvg also on Flower's plain path with evaluation exchanges of their own. The
final weights must be equal tensor for tensor, and each round's record the same:
central and client-model figures, federated evaluation, which clients failed or were
rejected, and the bytes each client moved. FedProx runs with screening at work (one
client's update is NaN and rejected, another client raises and fails alone while its
co-packed clients train); SCAFFOLD and FD sample 3 of 5 clients a round, so a client's
state (its control variate on disk, FD's model in the host's `Context.state`) must
wait on its host while it is not sampled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from fedapp.outputs import MODEL_FILE
from sim.flwr_cli import FINISHED_OK
from sim.superlink import LocalSuperLink
from tests.helpers import run_app

SAMPLED = {"fraction_train": 0.6, "num_server_rounds": 3}
RUNS = {
    "fedavg": {"strategy": "fedavg", "num_server_rounds": 2},
    "fedavg-plain-path-separate-evaluation": {
        "strategy": "fedavg",
        "num_server_rounds": 2,
        "simulation_fast_path": False,
        "federated_evaluation": "separate",
    },
    "fedprox-screening": {
        "strategy": "fedprox",
        "num_server_rounds": 2,
        "fault_injection": "partition-00001:nan,partition-00004:raise",
    },
    "scaffold": {"strategy": "scaffold", **SAMPLED},
    "fd": {"strategy": "fd", **SAMPLED},
}
SAME_PER_ROUND = (
    "central_accuracy",
    "central_loss",
    "train_loss",
    "client_accuracy_mean",
    "federated_accuracy",
    "federated_loss",
    "nodes_sampled",
    "nodes_replied",
    "failed_nodes",
    "rejected_updates",
    "updates_aggregated",
    "clients",
)


SLOW = {"fedavg", "fedavg-plain-path-separate-evaluation", "scaffold", "fd"}  # fedprox-screening runs in make test


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in RUNS]
)
def test_logical_clients_give_the_same_run_as_one_client_per_node(
    superlink: LocalSuperLink, tmp_path: Path, name: str
) -> None:
    outcomes = {
        per_node: run_app(
            superlink,
            tmp_path,
            nodes=5,
            model="2nn",
            run_name=f"{name}-{per_node}",
            clients_per_node=per_node,
            **RUNS[name],
        )
        for per_node in (1, 3)
    }
    assert all(outcome.status == FINISHED_OK for outcome in outcomes.values())
    single, packed = (torch.load(outcomes[k].folder / MODEL_FILE) for k in (1, 3))
    assert list(single) == list(packed)
    assert all(torch.equal(single[key], packed[key]) for key in single)
    rounds = {k: outcome.metrics()["rounds"] for k, outcome in outcomes.items()}
    for key in SAME_PER_ROUND:
        assert [r.get(key) for r in rounds[1]] == [r.get(key) for r in rounds[3]], key
    assert [r["messages_sent"] for r in rounds[1][1:]] == [r["nodes_sampled"] for r in rounds[1][1:]]
    assert all(r["messages_sent"] <= 2 for r in rounds[3][1:])  # hosts: partitions 0-2 on 0, 3-4 on 3
    _assert_exercised(name, rounds[3])


def _assert_exercised(name: str, rounds: list[dict[str, Any]]) -> None:
    """What each run must have gone through for its equality to mean something."""
    trained = rounds[1:]
    if name == "fedprox-screening":
        assert all(r["failed_nodes"] == ["partition-00004"] for r in trained)
        assert all([u["node"] for u in r["rejected_updates"]] == ["partition-00001"] for r in trained)
        assert all(r["updates_aggregated"] == 3 for r in trained)
    elif name in ("scaffold", "fd"):
        assert all(r["nodes_sampled"] == 3 for r in trained)
        assert rounds[-1]["central_accuracy"] > rounds[0]["central_accuracy"]
