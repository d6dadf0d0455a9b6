"""Tables: which columns are features, and standardisation with the training data's statistics.

A table's features are the numeric columns listed in `feature-columns`, or, when it
is empty, every numeric column but the target (and the `partition-by` column, which
names a node, not a property of a sample). Each feature is standardised with the mean
and standard deviation of the training pool, so every node and the server scale a
feature alike; a regression target is standardised the same way for training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from fedapp.data.spec import DataError

NUMERIC_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
NUMERIC_DTYPES += ("float16", "float32", "float64")


def is_numeric(feature: Any) -> bool:
    """True for a `datasets` `Value` feature of a number (or bool) type."""
    return type(feature).__name__ == "Value" and str(feature.dtype) in NUMERIC_DTYPES


def feature_columns(features: Any, listed: Sequence[str], excluded: Sequence[str], name: str) -> list[str]:
    """The feature columns of a table with `datasets` features `features`.

    Raises
    ------
    DataError
        If a listed column is missing or not numeric, or no numeric column is left.
    """
    columns = list(features)
    if listed:
        for column in listed:
            if column not in features:
                raise DataError(
                    f"feature column {column!r} (feature-columns) is not in dataset {name!r}; "
                    f"allowed: {', '.join(columns)}"
                )
            if not is_numeric(features[column]):
                raise DataError(
                    f"feature column {column!r} of dataset {name!r} is not numeric ({_type_name(features[column])}); "
                    "allowed: numeric columns (encode it as numbers, or leave it out of feature-columns)"
                )
        return list(listed)
    chosen = [column for column in columns if column not in excluded and is_numeric(features[column])]
    if not chosen:
        raise DataError(
            f"dataset {name!r} has no numeric column besides {', '.join(excluded)} (columns: {', '.join(columns)}); "
            "allowed: a table with numeric feature columns"
        )
    return chosen


def _type_name(feature: Any) -> str:
    return str(getattr(feature, "dtype", type(feature).__name__))


def feature_matrix(rows: Any, columns: Sequence[str], name: str) -> np.ndarray:
    """The feature columns of `rows` as a float32 (N, F) matrix; missing values are an error."""
    matrix = np.stack([np.asarray(rows[column], dtype=np.float64) for column in columns], axis=1)
    if not np.isfinite(matrix).all():
        bad = columns[int(np.argwhere(~np.isfinite(matrix))[0, 1])]
        raise DataError(
            f"feature column {bad!r} of dataset {name!r} has missing or infinite values; allowed: finite numbers only"
        )
    return matrix.astype(np.float32)


def column_statistics(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column (mean, standard deviation) of a (N, F) matrix; a constant column gets deviation 1."""
    mean = matrix.astype(np.float64).mean(axis=0)
    std = matrix.astype(np.float64).std(axis=0)
    return mean.astype(np.float32), np.where(std > 1e-12, std, 1.0).astype(np.float32)


def standardize(matrix: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    """(matrix - mean) / std per column, as float32."""
    return (torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float32)) - torch.from_numpy(mean)) / (
        torch.from_numpy(std)
    )
