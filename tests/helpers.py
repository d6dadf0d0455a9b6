"""Helpers shared by the tests: the app folder, free ports, Flower process checks, real runs and replies,
and datasets written in hub layout.

`FakeGrid`, `answer` and `play_round` run a strategy's round in-process: its messages
go to the real ClientApp (node id i + 1 is partition i), without Ray or a SuperLink.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
from flwr.supercore.task_identity import TaskIdentity

from fedapp.checkpoint import CHECKPOINT_FILE, read_checkpoint
from fedapp.client_app import app as client_app
from fedapp.models import build_model
from fedapp.node_state import STATE_DIR_VARIABLE
from fedapp.protocol import PERSONAL_STATE
from sim.flwr_cli import FINISHED_OK
from sim.overrides import app_defaults
from sim.run import RunOutcome, RunRequest, execute
from sim.superlink import LocalSuperLink, flwr_environment
from strategies.protocol import LEARNING_RATE, LOCAL_EPOCHS, SERVER_ROUND

APP_DIR = Path(__file__).resolve().parents[1]
DEPLOY = APP_DIR / "deploy"
NUM_NODES = 3
TWO_NN_BYTES = 199_210 * 4
CNN_BYTES = 1_663_370 * 4


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def deploy_script(name: str, *arguments: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `deploy/<name>` with Flower's offline environment; its exit code and output, never raising on failure."""
    return subprocess.run(
        [str(DEPLOY / name), *arguments],
        capture_output=True,
        text=True,
        env=flwr_environment(),
        timeout=timeout,
        check=False,
    )


def flower_processes(port: int) -> list[str]:
    """Command lines of Flower processes still serving `port` (for leak checks)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if f"127.0.0.1:{port}" in cmdline or f"--port {port}" in cmdline:
            found.append(cmdline)
    return found


def run_app(
    superlink: LocalSuperLink, tmp_path: Path, nodes: int = 4, app_dir: Path = APP_DIR, **overrides: Any
) -> RunOutcome:
    """Run the real app through `flwr run` on the test SuperLink; outputs go under `tmp_path`."""
    extra = {"output-dir": str(tmp_path), **{key.replace("_", "-"): value for key, value in overrides.items()}}
    request = RunRequest.build(app_dir, [], nodes=nodes, extra=extra)
    return execute(request)


def two_round_run(
    superlink: LocalSuperLink, tmp_path: Path, nodes: int, min_gain: float, **overrides: Any
) -> RunOutcome:
    """A 2-round run of `nodes` nodes that must complete and raise central accuracy by more than `min_gain`."""
    outcome = run_app(superlink, tmp_path, nodes=nodes, **{"num_server_rounds": 2, **overrides})
    assert outcome.status == FINISHED_OK
    rounds = outcome.metrics()["rounds"]
    assert [record["round"] for record in rounds] == [0, 1, 2]
    assert rounds[2]["central_accuracy"] > rounds[0]["central_accuracy"] + min_gain
    return outcome


def assert_weights_travel(record: dict[str, Any], model_bytes: int, nodes: int = 3) -> None:
    """Each of the `nodes` clients received and sent back `model_bytes` (plus headers)."""
    assert len(record["clients"]) == nodes
    for client in record["clients"]:
        assert model_bytes <= client["bytes_down"] < model_bytes * 1.01
        assert model_bytes <= client["bytes_up"] < model_bytes * 1.01
    assert record["bytes_up"] == sum(client["bytes_up"] for client in record["clients"])


def saved_personal_state(run_folder: Path) -> list[Path]:
    """The personal-state files (FedBN, Ditto) the nodes of the run in `run_folder` keep on disk, sorted."""
    scope = read_checkpoint(run_folder / CHECKPOINT_FILE).strategy_state["client_state"]["scope"]
    return sorted((Path(os.environ[STATE_DIR_VARIABLE]) / scope).glob(f"*/{PERSONAL_STATE}-*.pt"))


def personal_state_names(nodes: int) -> list[str]:
    """The file names `saved_personal_state` finds after 2 rounds in which all `nodes` nodes trained."""
    return [f"{PERSONAL_STATE}-{r}.pt" for r in (1, 2) for _ in range(nodes)]


def reply_from(node_id: int, request: Message, content: RecordDict, monkeypatch: pytest.MonkeyPatch) -> Message:
    """A reply to `request` as node `node_id` would send it."""
    monkeypatch.setattr(TaskIdentity, "_node_id", node_id)
    return Message(content, reply_to=request)


def run_config(**changes: Any) -> dict[str, Any]:
    return {**app_defaults(APP_DIR), "model": "2nn", **{k.replace("_", "-"): v for k, v in changes.items()}}


class FakeGrid(Grid):
    """Just enough of a Grid for a strategy's configure step: a fixed list of node ids."""

    def __init__(self, node_ids: list[int]) -> None:
        self.node_ids = node_ids

    def get_node_ids(self) -> Iterable[int]:
        return list(self.node_ids)

    def set_run(self, run: Any) -> None: ...
    def run(self) -> Any: ...  # type: ignore[override]
    def create_message(self, *args: Any, **kwargs: Any) -> Message: ...  # type: ignore[empty-body]
    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]: ...  # type: ignore[empty-body]
    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]: ...  # type: ignore[empty-body]
    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]: ...  # type: ignore[empty-body]


def answer(
    messages: list[Message], config: dict[str, Any], monkeypatch: pytest.MonkeyPatch, num_nodes: int = NUM_NODES
) -> list[Message]:
    """Deliver `messages` to the real ClientApp, node id i+1 being partition i of `num_nodes`."""
    replies = []
    for message in messages:
        node_id = message.metadata.dst_node_id
        monkeypatch.setattr(TaskIdentity, "_node_id", node_id)
        context = Context(
            run_id=1,
            node_id=node_id,
            node_config={"partition-id": node_id - 1, "num-partitions": num_nodes},
            state=RecordDict(),
            run_config=config,
        )
        replies.append(client_app(message, context))
    assert not any(reply.has_error() for reply in replies), [r.error for r in replies if r.has_error()]
    return replies


def play_round(
    strategy: Strategy,
    config: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    arrays: ArrayRecord,
    server_round: int = 1,
    num_nodes: int = NUM_NODES,
    partitions: int | None = None,
) -> tuple[list[Message], ArrayRecord]:
    """Configure, answer and aggregate one training round on nodes 1..`num_nodes`; return messages and new arrays.

    The data is split into `partitions` (default: `num_nodes`) shares, node i holding share i - 1.
    """
    train_config = ConfigRecord(
        {
            SERVER_ROUND: server_round,
            LEARNING_RATE: float(config["learning-rate"]),
            LOCAL_EPOCHS: int(config["local-epochs"]),
        }
    )
    grid = FakeGrid(list(range(1, num_nodes + 1)))
    messages = list(strategy.configure_train(server_round, arrays, train_config, grid))
    replies = answer(messages, config, monkeypatch, partitions or num_nodes)
    new_arrays, _ = strategy.aggregate_train(server_round, replies)
    return messages, new_arrays  # type: ignore[return-value]


def initial() -> ArrayRecord:
    return ArrayRecord(build_model("2nn", (1, 28, 28), 10, seed=0).state_dict())


def write_parquet_dataset(folder: Path, images: np.ndarray, labels: np.ndarray, splits: dict[str, range]) -> Path:
    """Write `images` (uint8, N x 28 x 28) and `labels` as a hub-style folder of `<split>.parquet` files."""
    datasets = pytest.importorskip("datasets")
    from PIL import Image  # noqa: PLC0415 (only the tests that write datasets need it)

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=10)})
    folder.mkdir(parents=True)
    for split, rows in splits.items():
        table = datasets.Dataset.from_dict(
            {"image": [Image.fromarray(images[i]) for i in rows], "label": labels[list(rows)].tolist()},
            features=features,
        )
        table.to_parquet(str(folder / f"{split}.parquet"))
    return folder
