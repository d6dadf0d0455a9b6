"""Every fedapp strategy through the real `flwr run` on Flower's simulation engine.

Small runs (3 or 4 nodes, 2 rounds, the 2NN or logistic regression) that check what
each strategy must put in `metrics.json`: its traffic per client, stragglers, privacy
spent, server distillation and client-model figures, and that the global model learns.
The exact math is tested in `test_strategies.py` and `test_distillation.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sim.superlink import LocalSuperLink
from tests.helpers import CNN_BYTES, TWO_NN_BYTES, assert_weights_travel, two_round_run

SMALL_RUN = {"model": "2nn", "fraction_evaluate": 0.0}


def training_rounds(
    superlink: LocalSuperLink, tmp_path: Path, nodes: int = 3, **overrides: Any
) -> list[dict[str, Any]]:
    """Run `nodes` nodes to completion with `overrides`; return the records of rounds 1 and 2."""
    return two_round_run(superlink, tmp_path, nodes, 0.3, **{**SMALL_RUN, **overrides}).metrics()["rounds"][1:]


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


def test_feddf_sends_weights_both_ways_and_validates_its_distillation(
    superlink: LocalSuperLink, tmp_path: Path
) -> None:
    rounds = training_rounds(superlink, tmp_path, nodes=4, strategy="feddf", distill_steps=60, distill_eval_every=20)
    for record in rounds:
        assert_weights_travel(record, TWO_NN_BYTES, nodes=4)
        assert 1 <= record["distill_steps"] <= 60 and record["distill_fell_back"] in (0.0, 1.0)
        assert record["distill_validation_best"] >= record["distill_validation_start"]
        assert 0 < record["consensus_accuracy"] <= 1


def assert_client_models_reported(record: dict[str, Any]) -> None:
    """The clients' own models: accuracy on the test set and on their validation splits, and the consensus's."""
    for key in ("client_accuracy", "client_validation_accuracy"):
        assert 0 < record[f"{key}_min"] <= record[f"{key}_mean"] <= record[f"{key}_max"] <= 1
    assert 0 < record["consensus_accuracy"] <= 1


def test_feddistill_is_fedmd_clients_of_other_architectures_upload_only_logits(
    superlink: LocalSuperLink, tmp_path: Path
) -> None:
    rounds = training_rounds(
        superlink, tmp_path, nodes=4, strategy="feddistill", model="cnn", client_model="2nn,logreg", distill_steps=50
    )
    for record in rounds:
        assert len(record["clients"]) == 4
        for client in record["clients"]:
            assert 0 < client["bytes_up"] <= 0.05 * CNN_BYTES
            assert client["bytes_down"] < TWO_NN_BYTES
        assert_client_models_reported(record)
        assert 0 < record["consensus_confidence"] <= 1 and record["distill_steps"] >= 1
    assert rounds[1]["client_accuracy_mean"] > 0.6


def test_fd_devices_of_other_architectures_exchange_only_label_tables(
    superlink: LocalSuperLink, tmp_path: Path
) -> None:
    rounds = training_rounds(superlink, tmp_path, nodes=4, strategy="fd", client_model="2nn,logreg")
    for record in rounds:
        assert len(record["clients"]) == 4
        for client in record["clients"]:
            assert 0 < client["bytes_up"] < 2_000 and client["bytes_down"] < 2_000
        assert_client_models_reported(record)
        assert record["central_accuracy"] == record["client_accuracy_mean"]
        assert not record["kept_previous_model"]
