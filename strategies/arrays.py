"""Model arrays as ordered `name -> ndarray` dicts, and conversion from/to Flower records.

Strategies do their arithmetic on plain NumPy dicts (see `aggregation.py`); these
helpers are the only place that crosses between `ArrayRecord` and NumPy.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict

Arrays = dict[str, np.ndarray]


def to_numpy(record: ArrayRecord) -> Arrays:
    """Deserialize an `ArrayRecord` into an ordered dict of arrays."""
    return {key: array.numpy() for key, array in record.items()}


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
