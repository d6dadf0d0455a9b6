"""Logical clients: a round's messages packed by host, one reply per client unpacked (`logical_clients.py`)."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Error, Message, MetricRecord, RecordDict

from fedapp.config import ConfigError, RunConfig
from fedapp.logical_clients import (
    CLIENT_ERRORS,
    ClientPacker,
    client_context,
    clients_per_node,
    host_partition,
    keep_state,
    pack,
    serve_clients,
    unpack_answer,
)
from tests.helpers import run_config

pytestmark = pytest.mark.usefixtures("message_identity")


def _messages(node_ids: list[int], message_type: str = "train") -> list[Message]:
    """One message per node sharing one ArrayRecord and one config, as a strategy's round does."""
    arrays = ArrayRecord({"w": Array(np.arange(3, dtype=np.float32))})
    config = ConfigRecord({"server-round": 1})
    return [
        Message(RecordDict({"arrays": arrays, "config": config}), dst_node_id=node_id, message_type=message_type)
        for node_id in node_ids
    ]


def test_clients_per_node_auto_gives_about_one_host_per_cpu() -> None:
    assert clients_per_node(1, 100, 2) == 1
    assert clients_per_node(7, 100, 2) == 7
    assert clients_per_node(0, 100, 2) == 50
    assert clients_per_node(0, 101, 2) == 51
    assert clients_per_node(0, 3, 16) == 1
    assert [host_partition(p, 4) for p in range(9)] == [0, 0, 0, 0, 4, 4, 4, 4, 8]


def test_clients_per_node_must_be_at_least_zero() -> None:
    assert RunConfig.from_mapping(run_config(clients_per_node=0)).clients_per_node == 0
    with pytest.raises(ConfigError, match=r"'clients-per-node' = -1 is not allowed; allowed: an integer >= 0"):
        RunConfig.from_mapping(run_config(clients_per_node=-1))


def test_a_packed_message_carries_each_clients_records_and_shares_what_they_share() -> None:
    messages = _messages([11, 12])
    packed = pack(messages, [3, 4], host_node_id=10)
    assert packed.metadata.dst_node_id == 10 and packed.metadata.message_type == "train.clients"
    assert packed.content["fedapp.clients"]["partition-ids"] == [3, 4]
    assert packed.content["fedapp.clients"]["message-type"] == "train"
    assert packed.content["0/arrays"] is packed.content["1/arrays"] is messages[0].content["arrays"]


def test_each_client_gets_its_own_reply_or_its_own_error() -> None:
    messages = _messages([11, 12, 13])
    packed = pack(messages, [0, 1, 2], host_node_id=11)
    content = RecordDict(
        {
            "0/metrics": MetricRecord({"num-examples": 5}),
            "2/metrics": MetricRecord({"num-examples": 7}),
            CLIENT_ERRORS: ConfigRecord({"1": "boom"}),
        }
    )
    replies = unpack_answer(Message(content, reply_to=packed), messages)
    assert [reply.metadata.src_node_id for reply in replies] == [11, 12, 13]  # type: ignore[union-attr]
    assert replies[0].content["metrics"]["num-examples"] == 5  # type: ignore[union-attr]
    assert replies[1].has_error() and replies[1].error.reason == "boom"  # type: ignore[union-attr]
    assert list(replies[2].content) == ["metrics"]  # type: ignore[union-attr]


def test_a_host_that_fails_or_is_silent_fails_all_its_clients() -> None:
    messages = _messages([11, 12])
    assert unpack_answer(None, messages) == [None, None]
    packed = pack(messages, [0, 1], host_node_id=11)
    failed = unpack_answer(Message(Error(0, "actor died"), reply_to=packed), messages)
    assert [reply.error.reason for reply in failed] == ["actor died", "actor died"]  # type: ignore[union-attr]


def test_the_packer_sends_one_message_per_host_and_answers_in_the_messages_order() -> None:
    nodes = {partition: 100 + partition for partition in range(6)}  # partition -> node id
    packer = ClientPacker(lambda: nodes, setting=3)
    messages = _messages([105, 100, 104, 102])
    sent: list[Message] = []

    def send(_grid: object, packed: list[Message], _timeout: float) -> list[Message | None]:
        sent.extend(packed)
        replies = []
        for message in packed:
            count = len(message.content["fedapp.clients"]["partition-ids"])
            records = {f"{i}/metrics": MetricRecord({"partition": p}) for i, p in enumerate(range(count))}
            replies.append(Message(RecordDict(records), reply_to=message))
        return replies

    answers = packer.exchange(send, None, messages, 1.0)  # type: ignore[arg-type]
    assert [(m.metadata.dst_node_id, m.content["fedapp.clients"]["partition-ids"]) for m in sent] == [
        (103, [5, 4]),
        (100, [0, 2]),
    ]
    assert [answer.metadata.src_node_id for answer in answers] == [105, 100, 104, 102]  # type: ignore[union-attr]


def _context(state: RecordDict) -> Context:
    return Context(
        run_id=1, node_id=10, node_config={"partition-id": 0, "num-partitions": 4}, state=state, run_config={}
    )


def test_a_client_context_holds_its_partition_and_only_its_own_state() -> None:
    host = _context(RecordDict({"client-00001/local-model": ConfigRecord({"v": 1}), "client-00002/x": ConfigRecord()}))
    own = client_context(host, 1)
    assert own.node_config == {"partition-id": 1, "num-partitions": 4}
    assert list(own.state) == ["local-model"]
    own.state["local-model"] = ConfigRecord({"v": 2})
    keep_state(host, 1, own.state)
    assert host.state["client-00001/local-model"]["v"] == 2 and "client-00002/x" in host.state


def test_the_host_serves_each_client_in_its_own_context_and_a_raising_one_fails_alone() -> None:
    host = _context(RecordDict())
    packed = pack(_messages([11, 12, 13]), [0, 1, 2], host_node_id=11)

    def app(message: Message, context: Context) -> Message:
        partition = int(context.node_config["partition-id"])
        if partition == 1:
            context.state["seen"] = ConfigRecord({"partition": partition})
            raise RuntimeError("injected")
        context.state["seen"] = ConfigRecord({"partition": partition, "type": message.metadata.message_type})
        return Message(RecordDict({"metrics": MetricRecord({"partition": partition})}), reply_to=message)

    reply = serve_clients(app, packed, host)
    assert reply.content["0/metrics"]["partition"] == 0 and reply.content["2/metrics"]["partition"] == 2
    assert "1/metrics" not in reply.content and "injected" in str(reply.content[CLIENT_ERRORS]["1"])
    assert sorted(host.state) == ["client-00000/seen", "client-00002/seen"]  # the failed client keeps no new state
    assert host.state["client-00002/seen"]["type"] == "train"
