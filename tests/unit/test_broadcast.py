"""Shared arrays in simulation: identical records on arrival, verified files, plain messages as the fallback."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Error, Message, RecordDict
from flwr.serverapp import Grid

from fedapp import broadcast
from fedapp.broadcast import (
    BROADCAST,
    UNAVAILABLE,
    ArrayBroadcast,
    BroadcastUnavailableError,
    decode,
    encode,
    receive_broadcast,
)
from fedapp.nodes import plain_exchange
from strategies.arrays import array_view, to_numpy, to_record
from strategies.protocol import ARRAYS, CONFIG

RNG = np.random.default_rng(3)


def _record() -> ArrayRecord:
    return to_record(
        {
            "w": RNG.normal(size=(5, 3)).astype(np.float32),
            "b": RNG.normal(size=3).astype(np.float64),
            "n": np.array(7, dtype=np.int64),
            "f": np.asfortranarray(RNG.normal(size=(2, 4)).astype(np.float32)),
        }
    )


def _same(left: ArrayRecord, right: ArrayRecord) -> bool:
    return list(left) == list(right) and all(
        (left[k].dtype, left[k].shape, left[k].stype, left[k].data)
        == (right[k].dtype, right[k].shape, right[k].stype, right[k].data)
        for k in left
    )


def test_a_view_of_an_array_equals_flowers_decoding_without_copying() -> None:
    record = _record()
    for array in record.values():
        view = array_view(array)
        expected = array.numpy()
        assert view.dtype == expected.dtype and view.shape == expected.shape
        assert view.tobytes() == expected.tobytes() and not view.flags.writeable
    assert set(to_numpy(record)) == set(record)


def test_a_record_survives_its_file_byte_for_byte() -> None:
    record = _record()
    assert _same(decode(b"".join(encode(record))), record)


def _train_messages(record: ArrayRecord, nodes: int) -> list[Message]:
    content = RecordDict({ARRAYS: record, CONFIG: ConfigRecord({"lr": 0.1})})  # one content for all, as Flower's
    return [Message(content, dst_node_id=node, message_type="train") for node in range(1, nodes + 1)]


def test_only_records_several_messages_share_go_by_reference(message_identity: None, tmp_path: Path) -> None:
    shared = _record()
    messages = _train_messages(shared, 3)
    alone = Message(RecordDict({ARRAYS: _record(), CONFIG: ConfigRecord()}), dst_node_id=9, message_type="train")
    sender = ArrayBroadcast(plain_exchange, tmp_path)
    outgoing = sender.outgoing([*messages, alone])
    assert outgoing[-1] is alone
    paths = {str(message.content[BROADCAST][ARRAYS]) for message in outgoing[:3]}
    assert len(paths) == 1 and sender.written == 1
    for message in outgoing[:3]:
        assert ARRAYS not in message.content and message.content[CONFIG]["lr"] == 0.1
        assert message.metadata.dst_node_id in (1, 2, 3)
    assert Path(paths.pop()).name.startswith(broadcast.digest_of(encode(shared)))


def test_the_client_restores_the_identical_record_and_reads_its_file_once(
    message_identity: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = _record()
    outgoing = ArrayBroadcast(plain_exchange, tmp_path).outgoing(_train_messages(shared, 2))
    reads = []
    read_bytes = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda path: reads.append(path) or read_bytes(path))
    seen = []
    for message in outgoing:
        receive_broadcast(message, Context(1, 1, {}, RecordDict(), {}), lambda m, _: seen.append(m.content) or m)
    assert len(reads) == 1
    assert all(BROADCAST not in content and _same(content[ARRAYS], shared) for content in seen)
    assert seen[0][ARRAYS] is seen[1][ARRAYS]  # one record per process: decoded once by the handler


def test_a_missing_or_altered_file_is_refused(message_identity: None, tmp_path: Path) -> None:
    outgoing = ArrayBroadcast(plain_exchange, tmp_path).outgoing(_train_messages(_record(), 2))
    path = Path(str(outgoing[0].content[BROADCAST][ARRAYS]))
    path.write_bytes(path.read_bytes()[:-1] + b"!")
    with pytest.raises(BroadcastUnavailableError, match=f"{UNAVAILABLE}: .* does not match its digest"):
        receive_broadcast(outgoing[0], Context(1, 1, {}, RecordDict(), {}), lambda m, _: m)
    path.unlink()
    with pytest.raises(BroadcastUnavailableError, match=f"{UNAVAILABLE}: cannot read"):
        receive_broadcast(outgoing[1], Context(1, 1, {}, RecordDict(), {}), lambda m, _: m)


class _Nodes(Grid):
    """A grid whose nodes answer at once; nodes in `far` cannot read broadcast files."""

    def __init__(self, far: set[int]) -> None:
        self.far = far
        self.pushed: list[Message] = []
        self._replies: list[Message] = []

    def push_messages(self, messages: Iterable[Message]) -> list[str]:
        ids = []
        for message in messages:
            message.metadata.__dict__["_message_id"] = f"m{len(self.pushed)}"
            self.pushed.append(message)
            ids.append(message.metadata.message_id)
            node = message.metadata.dst_node_id
            if node in self.far and BROADCAST in message.content:
                self._replies.append(Message(Error(1, f"<'{UNAVAILABLE}: cannot read'>"), reply_to=message))
            else:
                self._replies.append(Message(RecordDict({"echo": message.content[CONFIG]}), reply_to=message))
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> list[Message]:
        wanted = set(message_ids)
        return [reply for reply in self._replies if reply.metadata.reply_to_message_id in wanted]

    def get_node_ids(self) -> list[int]:
        return []

    def create_message(self, *args: object, **kwargs: object) -> Message:
        raise NotImplementedError

    def send_and_receive(self, *args: object, **kwargs: object) -> list[Message]:
        raise NotImplementedError

    def set_run(self, run: object) -> None:
        raise NotImplementedError

    @property
    def run(self) -> object:
        raise NotImplementedError


def test_a_node_that_cannot_read_the_file_gets_the_plain_message(message_identity: None, tmp_path: Path) -> None:
    messages = _train_messages(_record(), 3)
    grid = _Nodes(far={2})
    sender = ArrayBroadcast(plain_exchange, tmp_path)
    answers = sender.exchange(grid, messages, timeout=5.0)
    assert all(answer is not None and not answer.has_error() for answer in answers)
    assert [answer.metadata.src_node_id for answer in answers] == [1, 2, 3]
    resent = [m for m in grid.pushed if m.metadata.dst_node_id == 2 and BROADCAST not in m.content]
    assert len(resent) == 1 and ARRAYS in resent[0].content and sender.fallbacks == 1
    assert list(tmp_path.iterdir()) == []  # the exchange's files are gone once it is over
