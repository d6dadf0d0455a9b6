"""FedNova and FedBN through the real `flwr run` (4 nodes, 2 rounds).

SCAFFOLD's end-to-end runs are the resume test's (`test_reliability_runs.py`), Ditto's
the comparison's (`test_compare_run.py`). Each run checks what the strategy must put
in `metrics.json`; the exact math is in `tests/unit/test_noniid.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fedapp.models import batch_norm_keys, build_model
from sim.run import RunOutcome
from sim.superlink import LocalSuperLink
from tests.helpers import (
    TWO_NN_BYTES,
    assert_weights_travel,
    personal_state_names,
    saved_personal_state,
    two_round_run,
)

NODES = 4
SMALL_RUN = {"model": "2nn", "partitioner": "shard", "classes_per_node": 2}
PERSONALIZED = ("personalized_accuracy_min", "personalized_accuracy_mean", "personalized_accuracy_max")


def training_run(superlink: LocalSuperLink, tmp_path: Path, **overrides: Any) -> RunOutcome:
    """Run 4 nodes for 2 rounds on two digits each; check it completed and learned."""
    return two_round_run(superlink, tmp_path, NODES, 0.1, **{**SMALL_RUN, **overrides})


def test_fednova_keeps_and_normalises_stragglers_with_client_momentum(
    superlink: LocalSuperLink, tmp_path: Path
) -> None:
    rounds = training_run(
        superlink,
        tmp_path,
        strategy="fednova",
        local_epochs=2,
        straggler_fraction=0.5,
        client_momentum=0.9,
        learning_rate=0.01,
        fraction_evaluate=0.0,
    ).metrics()["rounds"][1:]
    for record in rounds:
        assert record["stragglers"] == 2 and record["stragglers_dropped"] == 0
        assert record["updates_aggregated"] == NODES and record["tau_eff"] > 0
        assert_weights_travel(record, TWO_NN_BYTES, nodes=NODES)
        assert "personalized_accuracy_mean" not in record


def test_fedbn_nodes_keep_their_batch_norm_layers_on_disk_and_report_their_own_models(
    superlink: LocalSuperLink, tmp_path: Path
) -> None:
    outcome = training_run(
        superlink, tmp_path, strategy="fedbn", model="cnn-small-bn", batch_size=32, local_epochs=1, learning_rate=0.1
    )
    for record in outcome.metrics()["rounds"][1:]:
        assert record["evaluation_nodes"] == NODES
        low, mean, high = (record[key] for key in PERSONALIZED)
        assert 0 <= low <= mean <= high <= 1
    saved = saved_personal_state(outcome.folder)
    assert sorted(path.name for path in saved) == personal_state_names(NODES)
    expected = sorted(batch_norm_keys(build_model("cnn-small-bn", (1, 28, 28), 10, seed=0)))
    assert all(sorted(torch.load(path, weights_only=True)) == expected for path in saved)
