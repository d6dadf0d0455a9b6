"""Tables: which columns are features, and standardisation with the training data's statistics.

A table's features are the numeric columns listed in `feature-columns`, or, when it
is empty, every numeric column but the target (and the `partition-by` column, which
names a node, not a property of a sample); the columns left out as not numeric are
logged. A text column whose cells are numbers but for a few (one cell like '?' or
'12,5' makes a CSV reader type the whole column as text) is refused, naming the first
cell that is not a number. Each feature is standardised with the mean and standard
deviation of the training pool, so every node and the server scale a feature alike;
a regression target is standardised the same way for training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from logging import WARNING
from typing import Any

import numpy as np
import torch
from flwr.common import log

from fedapp.data.spec import DataError

NUMERIC_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
NUMERIC_DTYPES += ("float16", "float32", "float64")
TEXT_DTYPES = ("string", "large_string")


def is_numeric(feature: Any) -> bool:
    """True for a `datasets` `Value` feature of a number (or bool) type."""
    return type(feature).__name__ == "Value" and str(feature.dtype) in NUMERIC_DTYPES


def feature_columns(table: Any, listed: Sequence[str], excluded: Sequence[str], name: str) -> list[str]:
    """The feature columns of `table` (a `datasets.Dataset`): `listed`, or every numeric column not `excluded`.

    A text column whose cells are all numbers counts as numeric (a CSV reader types a
    column as text when another file of the dataset has a text cell there: the split
    that has it is refused by `feature_matrix`). Without `listed`, the columns left out
    are logged: a run must not train on fewer features than its data holds unsaid.

    Raises
    ------
    DataError
        If a listed column is missing or not numeric, a column is numeric but for some
        cells (naming the first such cell), or no numeric column is left.
    """
    features = table.features
    columns = list(features)
    for column in listed:
        if column not in features:
            raise DataError(
                f"feature column {column!r} (feature-columns) is not in dataset {name!r}; allowed: {', '.join(columns)}"
            )
    candidates = list(listed) or [column for column in columns if column not in excluded]
    chosen = [column for column in candidates if _holds_numbers(table, column, name)]
    left_out = [column for column in candidates if column not in chosen]
    if listed and left_out:
        raise DataError(
            f"feature column {left_out[0]!r} of dataset {name!r} is not numeric ({_type_name(features[left_out[0]])});"
            " allowed: numeric columns (encode it as numbers, or leave it out of feature-columns)"
        )
    if not chosen:
        raise DataError(
            f"dataset {name!r} has no numeric column besides {', '.join(excluded)} (columns: {', '.join(columns)}); "
            "allowed: a table with numeric feature columns"
        )
    if left_out:
        log(
            WARNING,
            "[fedapp] dataset %r: features %s; left out, not numeric: %s (set feature-columns to choose)",
            name,
            ", ".join(chosen),
            ", ".join(f"{column} ({_type_name(features[column])})" for column in left_out),
        )
    return chosen


def _type_name(feature: Any) -> str:
    """A column's type as people say it: `text` for strings, else the `datasets` dtype or feature class."""
    dtype = str(getattr(feature, "dtype", type(feature).__name__))
    return "text" if dtype in TEXT_DTYPES else dtype


@dataclass(frozen=True)
class TextCells:
    """How many cells of a text column hold numbers, how many hold something else, and the first of those."""

    numbers: int
    others: int
    first: str = ""
    """'row R holds V' for the first cell that is no number (rows counted from 1 after the header, in file order)."""


def _text_cells(table: Any, column: str) -> TextCells:
    """Count the cells of a text `column` that parse as numbers, in the order of the files (not shuffled)."""
    if _type_name(table.features[column]) != "text":
        return TextCells(0, 0)
    numbers = others = 0
    first = ""
    for row, value in enumerate(table.data.column(column).to_pylist(), start=1):
        if _is_blank(value):
            continue
        try:
            float(value)
            numbers += 1
        except ValueError:
            others += 1
            first = first or f"row {row} holds {value[:40]!r}"
    return TextCells(numbers, others, first)


def _is_blank(value: str | None) -> bool:
    return value is None or not value.strip()


def _holds_numbers(table: Any, column: str, name: str) -> bool:
    """True for a numeric column, or a text column whose cells are all numbers.

    Raises
    ------
    DataError
        If it is a text column whose cells are numbers but for a few (one cell like '?'
        or '12,5' makes a CSV reader type the whole column as text), naming the first.
    """
    if is_numeric(table.features[column]):
        return True
    cells = _text_cells(table, column)
    if cells.others and cells.numbers > cells.others:
        raise _bad_cells(column, name, cells)
    return cells.numbers > 0 and not cells.others


def _bad_cells(column: str, name: str, cells: TextCells) -> DataError:
    """The one line for a feature column with cells that are not numbers, naming the first of them."""
    return DataError(
        f"feature column {column!r} of dataset {name!r} has {cells.others} of {cells.numbers + cells.others} cells "
        f"that are not numbers ({cells.first}); allowed: numbers only (fix them, or leave the column out with "
        "feature-columns)"
    )


def feature_matrix(rows: Any, columns: Sequence[str], name: str) -> np.ndarray:
    """The feature columns of `rows` as a float32 (N, F) matrix; text cells or missing values are an error."""
    matrix = np.stack([_column_values(rows, column, name) for column in columns], axis=1)
    if not np.isfinite(matrix).all():
        bad = columns[int(np.argwhere(~np.isfinite(matrix))[0, 1])]
        raise DataError(
            f"feature column {bad!r} of dataset {name!r} has missing or infinite values; allowed: finite numbers only"
        )
    return matrix.astype(np.float32)


def _column_values(rows: Any, column: str, name: str) -> np.ndarray:
    """One feature column as float64; one typed as text must hold numbers only (blank cells are missing values)."""
    if is_numeric(rows.features[column]):
        return np.asarray(rows[column], dtype=np.float64)
    cells = _text_cells(rows, column)
    if cells.others:
        raise _bad_cells(column, name, cells)
    return np.asarray([np.nan if _is_blank(value) else float(value) for value in rows[column]], dtype=np.float64)


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
