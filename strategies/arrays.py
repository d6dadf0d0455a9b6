"""Model arrays as ordered `name -> ndarray` dicts, and conversion from/to Flower records.

Strategies do their arithmetic on plain NumPy dicts (see `aggregation.py`); these
helpers are the only place that crosses between `ArrayRecord` and NumPy.
"""

from __future__ import annotations

import functools
import io
import math
import struct
from collections.abc import Iterable

import numpy as np
from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict

Arrays = dict[str, np.ndarray]
NUMPY_STYPE = "numpy.ndarray"
HEADER_PREFIX = 10  # magic (6 bytes), version (2), header length (2 bytes in version 1, 4 from version 2)
HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def to_numpy(record: ArrayRecord) -> Arrays:
    """Deserialize an `ArrayRecord` into an ordered dict of (read-only) arrays, without copying their values."""
    return {key: array_view(array) for key, array in record.items()}


def array_view(array: Array) -> np.ndarray:
    """The values of a Flower `Array` as a read-only NumPy view of its bytes.

    An `Array` holds its values as `.npy` bytes. Flower's `Array.numpy()` parses them
    with `np.load`, which copies every value: for a round of 100 CNN replies, 660 MB
    copied twice (reply checks, then aggregation). This reads the same `.npy` header
    (parsed once per distinct header: every reply of a round has the same ones) and
    returns the values in place; the result equals `array.numpy()` bit for bit.
    Other formats (object arrays, `.npy` version 3) are left to `array.numpy()`.
    """
    if array.stype != NUMPY_STYPE or len(array.data) < HEADER_PREFIX:
        return array.numpy()
    (header_length,) = struct.unpack_from("<H" if array.data[6] == 1 else "<I", array.data, 8)
    offset = HEADER_PREFIX + header_length + (0 if array.data[6] == 1 else 2)
    layout = _layout(array.data[:offset])
    if layout is None:
        return array.numpy()
    shape, fortran_order, dtype = layout
    values = np.frombuffer(array.data, dtype=dtype, count=math.prod(shape), offset=offset)
    return values.reshape(shape, order="F" if fortran_order else "C")


@functools.lru_cache(maxsize=256)
def _layout(header: bytes) -> tuple[tuple[int, ...], bool, np.dtype] | None:
    """(shape, Fortran order, dtype) from a `.npy` header, or None for a format `array_view` leaves to NumPy."""
    stream = io.BytesIO(header)
    read_header = HEADER_READERS.get(np.lib.format.read_magic(stream))
    if read_header is None:
        return None
    shape, fortran_order, dtype = read_header(stream)
    return None if dtype.hasobject else (shape, fortran_order, dtype)


def to_record(arrays: Arrays) -> ArrayRecord:
    """Serialize an ordered dict of arrays into an `ArrayRecord`.

    `np.require` keeps 0-d arrays 0-d (BatchNorm's `num_batches_tracked`), where
    `np.ascontiguousarray` would turn them into shape (1,).
    """
    return ArrayRecord({key: Array(np.require(value, requirements="C")) for key, value in arrays.items()})


def single_array_record(content: RecordDict) -> ArrayRecord | None:
    """The single `ArrayRecord` in `content` (as Flower's strategies read a reply), or None if it has none."""
    records = list(content.array_records.values())
    if len(records) > 1:
        raise ValueError(f"expected one ArrayRecord, found {len(records)}")
    return records[0] if records else None


def reply_arrays(content: RecordDict) -> Arrays:
    """The arrays a client sent back in a reply (its single `ArrayRecord`)."""
    record = single_array_record(content)
    if record is None:
        raise ValueError("the reply carries no ArrayRecord")
    return to_numpy(record)


def reply_metrics(content: RecordDict) -> MetricRecord:
    """The single `MetricRecord` a client's reply carries (its numbers: examples, loss, ...)."""
    return next(iter(content.metric_records.values()))


def content_bytes(contents: Iterable[RecordDict]) -> int:
    """Bytes of payload in `contents`, measured from the records themselves."""
    return sum(record.count_bytes() for content in contents for record in content.values())
