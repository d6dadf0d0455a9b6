"""Model arrays as ordered `name -> ndarray` dicts, and conversion from/to Flower records.

Strategies do their arithmetic on plain NumPy dicts (see `aggregation.py`); these
helpers are the only place that crosses between `ArrayRecord` and NumPy.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from flwr.app import Array, ArrayRecord, RecordDict

from fedapp.protocol import ARRAYS

Arrays = dict[str, np.ndarray]


def to_numpy(record: ArrayRecord) -> Arrays:
    """Deserialize an `ArrayRecord` into an ordered dict of arrays."""
    return {key: array.numpy() for key, array in record.items()}


def to_record(arrays: Arrays) -> ArrayRecord:
    """Serialize an ordered dict of arrays into an `ArrayRecord`."""
    return ArrayRecord({key: Array(np.ascontiguousarray(value)) for key, value in arrays.items()})


def reply_arrays(content: RecordDict) -> Arrays:
    """The arrays a client sent back in a reply (its single `ArrayRecord`)."""
    return to_numpy(content[ARRAYS])


def content_bytes(contents: Iterable[RecordDict]) -> int:
    """Bytes of payload in `contents`, measured from the records themselves."""
    return sum(record.count_bytes() for content in contents for record in content.values())
