"""Beyond MNIST through the real `flwr run`: an RGB set with ResNet-8; a table split by writer, a user's model.

Two runs, each checking several facts (2 nodes, 2 rounds, a few hundred samples):

- a set the test writes in the exact schema of `uoft-cs/cifar10` (`tests/hub_schemas.py`),
  read through the same code path as the hub (`FederatedDataset` over a local folder
  of parquet files): 32x32 RGB images, ResNet-8, augmentation, a Dirichlet split;
- a CSV table (the same `FederatedDataset` path, `csv` builder) regressed by the user's
  factory `usermodels.example:linear` (imported from the FAB on the nodes), split
  naturally by its FEMNIST-style `writer_id` column (6 writers grouped onto 2 nodes).

The `flwrlabs/femnist` schema (`image`, `character`, `writer_id`; no test split) and its
natural split by writer are tested through the hub code path in `tests/unit/test_data.py`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fedapp.models import build_model, count_parameters
from sim.flwr_cli import FINISHED_OK
from sim.superlink import LocalSuperLink
from tests.helpers import run_app
from tests.hub_schemas import write_cifar10_like, write_table_csv

FLOAT_BYTES = 4


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated datasets, written once for the module."""
    folder = tmp_path_factory.mktemp("hub-schemas")
    write_cifar10_like(folder / "cifar10", num_train=240, num_test=60)
    write_table_csv(folder / "table.csv", count=240, writers=6)
    return folder


def rounds_of(superlink: LocalSuperLink, tmp_path: Path, nodes: int, **overrides: object) -> list[dict]:
    """Run to completion; return the records of rounds 0, 1 and 2."""
    outcome = run_app(superlink, tmp_path, nodes=nodes, num_server_rounds=2, **overrides)
    assert outcome.status == FINISHED_OK
    rounds = outcome.metrics()["rounds"]
    assert [record["round"] for record in rounds] == [0, 1, 2]
    return rounds


def test_a_32x32_rgb_set_trains_resnet8_with_augmentation(
    superlink: LocalSuperLink, tmp_path: Path, data_folder: Path
) -> None:
    rounds = rounds_of(
        superlink,
        tmp_path,
        2,
        dataset=str(data_folder / "cifar10"),
        model="resnet8",
        augment="standard",
        partitioner="dirichlet",
        dirichlet_alpha=1.0,
        batch_size=16,
        learning_rate=0.05,
    )
    model_bytes = sum(
        tensor.numel() * tensor.element_size()
        for tensor in build_model("resnet8", (3, 32, 32), 10, seed=0).state_dict().values()
    )
    assert count_parameters(build_model("resnet8", (3, 32, 32), 10, seed=0)) == 78_042
    for record in rounds[1:]:
        assert record["nodes_replied"] == 2
        assert 2 * model_bytes <= record["bytes_up"] < 2 * model_bytes * 1.05, "ResNet-8 weights and BN buffers"
        assert record["federated_accuracy"] is not None and record["federated_loss"] is not None
    assert rounds[2]["central_accuracy"] > 0.2 > rounds[0]["central_accuracy"] - 0.1, "learns past chance (0.1)"


def test_a_table_split_by_writer_trains_a_users_regression_model(
    superlink: LocalSuperLink, tmp_path: Path, data_folder: Path
) -> None:
    """A regression (RMSE, MAE, R²) of a user's factory, on a table split naturally by its `writer_id` column."""
    rounds = rounds_of(
        superlink,
        tmp_path,
        2,
        task="regression",
        dataset=str(data_folder / "table.csv"),
        target_column="y",
        partitioner="natural",
        partition_by="writer_id",
        model="usermodels.example:linear",
        local_epochs=3,
        batch_size=8,
        learning_rate=0.05,
    )
    for record in rounds[1:]:
        assert {"central_rmse", "central_mae", "central_r2", "central_loss"} <= set(record)
        assert {"federated_rmse", "federated_mae", "federated_r2"} <= set(record)
        assert "central_accuracy" not in record and "federated_accuracy" not in record
    clients = rounds[1]["clients"]
    assert sorted(client["node"] for client in clients) == ["partition-00000", "partition-00001"]
    model_bytes = FLOAT_BYTES * count_parameters(build_model("usermodels.example:linear", (3,), 1, seed=0))
    assert model_bytes <= clients[0]["bytes_up"] < model_bytes + 1024, "the user's linear model on x1, x2, x3"
    assert rounds[2]["central_r2"] > 0.5 > rounds[0]["central_r2"], "y = 3 x1 - 0.2 x2 + noise is learnable"
    assert rounds[2]["central_rmse"] < rounds[0]["central_rmse"] / 2
