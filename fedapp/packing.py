"""A message's `ArrayRecord`s as one array each on the wire (deployment).

Flower's deployment transport moves a message object by object over HTTP: the
message, its `RecordDict`, each record, each `Array` and each `ArrayChunk` is its own
request to push and its own request to pull, at the SuperLink, the SuperNode and the
ClientApp task alike. A 2NN's weights (6 tensors) make 12 of a train message's 16
objects, and as many again in the reply; at 10 nodes on one machine these requests,
not the training, take most of a round's CPU (docs/performance-cohorts.md).

Here the ServerApp replaces each `ArrayRecord` of an outgoing message by a record
holding one `Array`: the original record's arrays in `broadcast.encode`'s layout
(a header of keys, dtypes, shapes and sizes, then every array's bytes exactly as
held), marked by `PACKED_STYPE`. The ClientApp's `packed_transport` mod restores
the identical record before any handler runs and packs the reply's records the same
way; the server restores those as they arrive. Records come back byte for byte, so
training, aggregation and every figure are what they would be with plain messages. A
record shared by several messages of an exchange is packed once, and the caller's
messages hold their own records again once pushed. The simulation sends plain
messages (or `broadcast.py`'s references): its engine moves a message as one object.

Why not Flower's own: its transport has no setting for how records are split into
objects.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flwr.app import Array, ArrayRecord, Context, Message, RecordDict
from flwr.clientapp.typing import ClientAppCallable

from fedapp.broadcast import decode, encode

PACKED_KEY = "fedapp.packed"
PACKED_STYPE = "fedapp.packed-array-record"


def pack(record: ArrayRecord) -> ArrayRecord:
    """`record` as a record of one `Array` (`PACKED_STYPE`) holding all its arrays."""
    data = b"".join(encode(record))
    return ArrayRecord({PACKED_KEY: Array(dtype="uint8", shape=(len(data),), stype=PACKED_STYPE, data=data)})


def is_packed(record: ArrayRecord) -> bool:
    """Whether `record` is one that `pack` made."""
    return len(record) == 1 and PACKED_KEY in record and record[PACKED_KEY].stype == PACKED_STYPE


def unpack(record: ArrayRecord) -> ArrayRecord:
    """The record `pack` was given (identical arrays, byte for byte)."""
    return decode(record[PACKED_KEY].data)


def pack_content(content: RecordDict) -> None:
    """Pack every `ArrayRecord` of `content` in place."""
    for key, record in list(content.array_records.items()):
        content[key] = pack(record)


def unpack_content(content: RecordDict) -> list[str]:
    """Restore every packed `ArrayRecord` of `content` in place; return their keys."""
    keys = [key for key, record in content.array_records.items() if is_packed(record)]
    for key in keys:
        content[key] = unpack(content[key])
    return keys


@contextmanager
def packed_for_push(messages: list[Message]) -> Iterator[None]:
    """Within the block, `messages` carry packed records (one per distinct record); their own ones after it."""
    packed: dict[int, ArrayRecord] = {}
    swapped: list[tuple[RecordDict, str, ArrayRecord]] = []
    contents = {id(message.content): message.content for message in messages}  # messages may share one
    for content in contents.values():
        for key, record in list(content.array_records.items()):
            if id(record) not in packed:
                packed[id(record)] = pack(record)
            swapped.append((content, key, record))
            content[key] = packed[id(record)]
    try:
        yield
    finally:
        for content, key, record in swapped:
            content[key] = record


def packed_transport(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """ClientApp mod: restore a message's packed records, handle it, and pack the reply's records in turn."""
    if not unpack_content(message.content):
        return call_next(message, context)
    reply = call_next(message, context)
    if not reply.has_error():
        pack_content(reply.content)
    return reply
