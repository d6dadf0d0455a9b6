"""Every fedapp strategy through the real `flwr run` on Flower's simulation engine.

Small runs (3 nodes, 2 rounds, the 2NN) that check what each strategy must put in
`metrics.json`: its traffic per client, stragglers, privacy spent, and that the
global model learns. The exact math is tested in `test_strategies.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sim.flwr_cli import FINISHED_OK
from sim.superlink import LocalSuperLink
from tests.helpers import run_app

TWO_NN_BYTES = 199_210 * 4
CNN_BYTES = 1_663_370 * 4
SMALL_RUN = {"model": "2nn", "num_server_rounds": 2, "fraction_evaluate": 0.0}


def training_rounds(superlink: LocalSuperLink, tmp_path: Path, **overrides: Any) -> list[dict[str, Any]]:
    """Run 3 nodes to completion with `overrides`; return the records of rounds 1 and 2."""
    outcome = run_app(superlink, tmp_path, nodes=3, **{**SMALL_RUN, **overrides})
    assert outcome.status == FINISHED_OK
    rounds = outcome.metrics()["rounds"]
    assert [record["round"] for record in rounds] == [0, 1, 2]
    assert rounds[2]["central_accuracy"] > rounds[0]["central_accuracy"] + 0.3
    return rounds[1:]


def assert_weights_travel(record: dict[str, Any], model_bytes: int) -> None:
    """Each of the 3 clients received and sent back one model's worth of bytes (plus headers)."""
    assert len(record["clients"]) == 3
    for client in record["clients"]:
        assert model_bytes <= client["bytes_down"] < model_bytes * 1.01
        assert model_bytes <= client["bytes_up"] < model_bytes * 1.01
    assert record["bytes_up"] == sum(client["bytes_up"] for client in record["clients"])


def test_fedavg_with_server_momentum_drops_stragglers(superlink: LocalSuperLink, tmp_path: Path) -> None:
    rounds = training_rounds(
        superlink, tmp_path, local_epochs=2, straggler_fraction=0.34, server_momentum=0.5, learning_rate=0.1
    )
    for record in rounds:
        assert record["stragglers"] == record["stragglers_dropped"] == 1
        assert_weights_travel(record, TWO_NN_BYTES)


def test_fedprox_keeps_stragglers_and_client_side_dp_clips_and_accounts(
    superlink: LocalSuperLink, tmp_path: Path
) -> None:
    rounds = training_rounds(
        superlink,
        tmp_path,
        strategy="fedprox",
        proximal_mu=0.1,
        local_epochs=2,
        straggler_fraction=0.34,
        dp="client-fixed",
        dp_clipping_norm=5.0,
        dp_noise_multiplier=0.01,
    )
    for record in rounds:
        assert record["stragglers"] == 1 and record["stragglers_dropped"] == 0
        assert record["max_received_update_norm"] <= 5.0 * (1 + 1e-5)
    assert 0 < rounds[0]["epsilon"] < rounds[1]["epsilon"]
    assert rounds[0]["dp_expected_clients"] == 3.0 and rounds[0]["dp_clipping_norm"] == 5.0


def test_fedsgd_sends_one_gradient_per_client(superlink: LocalSuperLink, tmp_path: Path) -> None:
    rounds = training_rounds(superlink, tmp_path, strategy="fedsgd", learning_rate=0.5)
    for record in rounds:
        assert_weights_travel(record, TWO_NN_BYTES)


def test_feddf_sends_weights_both_ways(superlink: LocalSuperLink, tmp_path: Path) -> None:
    rounds = training_rounds(superlink, tmp_path, strategy="feddf")
    for record in rounds:
        assert_weights_travel(record, TWO_NN_BYTES)


def test_feddistill_clients_of_another_architecture_upload_only_soft_labels(
    superlink: LocalSuperLink, tmp_path: Path
) -> None:
    rounds = training_rounds(superlink, tmp_path, strategy="feddistill", model="cnn", client_model="2nn")
    for record in rounds:
        for client in record["clients"]:
            assert 0 < client["bytes_up"] <= 0.05 * CNN_BYTES
            assert client["bytes_down"] < TWO_NN_BYTES
        assert 0 < record["consensus_confidence"] <= 1
