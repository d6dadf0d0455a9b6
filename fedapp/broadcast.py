"""A round's global arrays sent once per worker process instead of once per message (simulation).

In a simulation every message of a round carries the same global arrays: Ray pickles
them into its object store once per message (100 CNN clients: 660 MB a round) and
every client decodes them again. With `simulation-fast-path` on, the ServerApp writes
each `ArrayRecord` that several messages of one exchange share to a file named by the
BLAKE2b digest of its content, once, and sends each node a small reference in its
place (the `BROADCAST` ConfigRecord: record key -> file). The ClientApp's
`receive_broadcast` mod reads the file once per process, checks its digest, and puts
the identical `ArrayRecord` back into the message before any handler sees it; later
messages to that process reuse it. A node that cannot read or verify the file (a Ray
worker on another machine) answers with an error naming `UNAVAILABLE`, and the server
sends that node the plain message. Deployments always send plain messages.

Why not Flower's own transport: the simulation engine hands each message to Ray as
one Python object, with no way to share part of it between messages.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from logging import INFO
from pathlib import Path

from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.clientapp.typing import ClientAppCallable
from flwr.common import log
from flwr.serverapp import Grid

from strategies.messages import readdressed

BROADCAST = "fedapp.broadcast"
UNAVAILABLE = "fedapp-broadcast-unavailable"
SUFFIX = ".arrays"
SHARED_MEMORY = Path("/dev/shm")  # noqa: S108 (shared memory is the point; files are verified by digest)
HEADER_LENGTH = struct.Struct("<Q")
CLIENT_CACHE_SIZE = 2

Send = Callable[[Grid, list[Message], float], list["Message | None"]]


class BroadcastUnavailableError(RuntimeError):
    """A node could not read or verify the file its message refers to (the server then sends it the plain message)."""


def digest_of(chunks: list[bytes]) -> str:
    """The hex BLAKE2b-256 digest of the concatenated `chunks`."""
    hasher = hashlib.blake2b(digest_size=32)
    for chunk in chunks:
        hasher.update(chunk)
    return hasher.hexdigest()


def encode(record: ArrayRecord) -> list[bytes]:
    """`record` as file content: an 8-byte header length, a JSON header (per array: key, dtype, shape, stype, size),
    then each array's bytes exactly as the record holds them."""
    header = json.dumps(
        [[key, array.dtype, list(array.shape), array.stype, len(array.data)] for key, array in record.items()]
    ).encode()
    return [HEADER_LENGTH.pack(len(header)), header, *(array.data for array in record.values())]


def decode(content: bytes) -> ArrayRecord:
    """The `ArrayRecord` that `encode` wrote (identical arrays, byte for byte)."""
    (header_length,) = HEADER_LENGTH.unpack_from(content)
    start = HEADER_LENGTH.size + header_length
    arrays = {}
    for key, dtype, shape, stype, size in json.loads(content[HEADER_LENGTH.size : start]):
        arrays[key] = Array(dtype=dtype, shape=tuple(shape), stype=stype, data=content[start : start + size])
        start += size
    return ArrayRecord(arrays)


def shared_folder() -> Path:
    """A new folder for one run's broadcast files: in shared memory when there is some, else the temporary folder."""
    parent = SHARED_MEMORY if SHARED_MEMORY.is_dir() and os.access(SHARED_MEMORY, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="fedapp-broadcast-", dir=parent))


@dataclass
class ArrayBroadcast:
    """The server's side: writes shared records to files, sends references, resends plain messages on demand.

    `send` exchanges messages with the nodes (`nodes.plain_exchange`: answers in the
    messages' order). The files go to `folder`, made on first use (`shared_folder`)
    and removed by `close`.
    """

    send: Send
    folder: Path | None = None
    written: int = 0
    fallbacks: int = 0
    _files: dict[int, tuple[ArrayRecord, Path]] = field(default_factory=dict)

    def exchange(self, grid: Grid, messages: list[Message], timeout: float) -> list[Message | None]:
        """Send `messages` (shared records by reference) and return each one's answer, None if none came in time.

        A node that answers that it cannot use the reference gets the plain message,
        within what is left of `timeout`. The exchange's files are removed at the end.
        """
        deadline = time.monotonic() + timeout
        try:
            answers = self.send(grid, self.outgoing(messages), timeout)
            unavailable = [index for index, answer in enumerate(answers) if _unavailable(answer)]
            if unavailable:
                self.fallbacks += len(unavailable)
                log(
                    INFO, "[fedapp] %d node(s) cannot read shared arrays; sending them plain messages", len(unavailable)
                )
                retried = self.send(
                    grid, [_copy(messages[index]) for index in unavailable], max(0.0, deadline - time.monotonic())
                )
                for index, answer in zip(unavailable, retried, strict=True):
                    answers[index] = answer
            return answers
        finally:
            self._remove_files()

    def outgoing(self, messages: list[Message]) -> list[Message]:
        """The messages to push: every `ArrayRecord` that several of them share replaced by a reference to its file."""
        uses = Counter(id(record) for message in messages for record in message.content.array_records.values())
        return [self._by_reference(message, uses) for message in messages]

    def close(self) -> None:
        """Remove the folder and anything left in it."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _by_reference(self, message: Message, uses: Counter[int]) -> Message:
        shared = {key: record for key, record in message.content.array_records.items() if uses[id(record)] > 1}
        if not shared:
            return message
        content = RecordDict({key: record for key, record in message.content.items() if key not in shared})
        content[BROADCAST] = ConfigRecord({key: str(self._file(record)) for key, record in shared.items()})
        return readdressed(message, content=content)

    def _file(self, record: ArrayRecord) -> Path:
        """The file holding `record`, written on first use in this exchange."""
        if id(record) not in self._files:
            self.folder = self.folder or shared_folder()
            chunks = encode(record)
            path = self.folder / f"{digest_of(chunks)}{SUFFIX}"
            if not path.exists():
                staging = path.with_suffix(".partial")
                with staging.open("wb") as file:
                    for chunk in chunks:
                        file.write(chunk)
                staging.replace(path)
                self.written += 1
            self._files[id(record)] = (record, path)
        return self._files[id(record)][1]

    def _remove_files(self) -> None:
        for _, path in self._files.values():
            path.unlink(missing_ok=True)
        self._files.clear()


def _unavailable(answer: Message | None) -> bool:
    return answer is not None and answer.has_error() and UNAVAILABLE in answer.error.reason


def _copy(message: Message) -> Message:
    """A fresh message with `message`'s content and address (a pushed message cannot be pushed again)."""
    return readdressed(message)


class _ReceivedRecords:
    """The records this process read most recently, by digest (a round's arrays serve all its messages here)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.records: OrderedDict[str, ArrayRecord] = OrderedDict()

    def get(self, path: str) -> ArrayRecord:
        """The record in file `path`, verified against the digest in its name."""
        digest = Path(path).name.removesuffix(SUFFIX)
        if digest in self.records:
            self.records.move_to_end(digest)
            return self.records[digest]
        try:
            content = Path(path).read_bytes()
        except OSError as error:
            raise BroadcastUnavailableError(f"{UNAVAILABLE}: cannot read {path}: {error}") from error
        if digest_of([content]) != digest:
            raise BroadcastUnavailableError(f"{UNAVAILABLE}: {path} does not match its digest")
        self.records[digest] = decode(content)
        while len(self.records) > self.size:
            self.records.popitem(last=False)
        return self.records[digest]


_RECEIVED = _ReceivedRecords(CLIENT_CACHE_SIZE)


def receive_broadcast(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """ClientApp mod: put the records a message refers to back in place, then handle it as usual."""
    if BROADCAST not in message.content:
        return call_next(message, context)
    references = message.content[BROADCAST]
    for key, path in references.items():
        message.content[key] = _RECEIVED.get(str(path))
    del message.content[BROADCAST]
    return call_next(message, context)
