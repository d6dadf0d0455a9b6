"""Helpers shared by the tests: the app folder, free ports, Flower process checks, real runs and replies,
and rounds of a strategy played in-process against the real ClientApp."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid
from flwr.supercore.task_identity import TaskIdentity

from fedapp.client_app import app as client_app
from fedapp.models import build_model
from sim.overrides import app_defaults
from sim.run import RunOutcome, RunRequest, execute
from sim.superlink import LocalSuperLink
from strategies.fedavg import FedAvg
from strategies.protocol import LEARNING_RATE, LOCAL_EPOCHS, SERVER_ROUND

APP_DIR = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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


def reply_from(node_id: int, request: Message, content: RecordDict, monkeypatch: pytest.MonkeyPatch) -> Message:
    """A reply to `request` as node `node_id` would send it."""
    monkeypatch.setattr(TaskIdentity, "_node_id", node_id)
    return Message(content, reply_to=request)


NUM_NODES = 3


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


def answer(messages: list[Message], config: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> list[Message]:
    """Deliver `messages` to the real ClientApp, node id i+1 being partition i."""
    replies = []
    for message in messages:
        node_id = message.metadata.dst_node_id
        monkeypatch.setattr(TaskIdentity, "_node_id", node_id)
        context = Context(
            run_id=1,
            node_id=node_id,
            node_config={"partition-id": node_id - 1, "num-partitions": NUM_NODES},
            state=RecordDict(),
            run_config=config,
        )
        replies.append(client_app(message, context))
    assert not any(reply.has_error() for reply in replies), [r.error for r in replies if r.has_error()]
    return replies


def play_round(
    strategy: FedAvg, config: dict[str, Any], monkeypatch: pytest.MonkeyPatch, arrays: ArrayRecord
) -> tuple[list[Message], ArrayRecord]:
    train_config = ConfigRecord(
        {SERVER_ROUND: 1, LEARNING_RATE: float(config["learning-rate"]), LOCAL_EPOCHS: int(config["local-epochs"])}
    )
    messages = list(strategy.configure_train(1, arrays, train_config, FakeGrid(list(range(1, NUM_NODES + 1)))))
    replies = answer(messages, config, monkeypatch)
    new_arrays, _ = strategy.aggregate_train(1, replies)
    return messages, new_arrays


def initial() -> ArrayRecord:
    return ArrayRecord(build_model("2nn", (1, 28, 28), 10, seed=0).state_dict())
