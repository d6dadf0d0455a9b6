"""From a dataset's rows to arrays: which columns hold the inputs, the label and the node id, and their values.

Columns are given by the run config or found by name when that is unambiguous:

- images: the image column is `image-column`, else the one column named `image` or
  `img` (or typed as an image); the label is `label-column`, else the one column of
  `label`, `fine_label`, `character`;
- tables (no image column): the target is `target-column`, else the one column of
  `target`, `label`; the features are `feature-columns`, else every numeric column but
  the target and `partition-by` (`tabular.py`);
- `partition-by` names the column whose values are the natural nodes (e.g. FEMNIST's
  `writer_id`).

A column that is not there, or an ambiguous choice, is one line listing the columns;
an image that cannot be decoded is one line naming its file.
Class labels become indices 0..K-1: a `ClassLabel`'s own order, integer labels as
they are, names that are all digits as those numbers, other names in sorted order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fedapp.choices import REGRESSION
from fedapp.data import images, tabular
from fedapp.data.hub import Splits
from fedapp.data.spec import IMAGE, TABLE, DataError, SourceSpec

IMAGE_COLUMNS = ("image", "img")
LABEL_COLUMNS = ("label", "fine_label", "character")
TARGET_COLUMNS = ("target", "label")


@dataclass(frozen=True)
class Columns:
    """Where a dataset's values are: its kind, input columns (the image, or the features), label and node id."""

    kind: str
    inputs: tuple[str, ...]
    label: str
    partition_by: str = ""


@dataclass(frozen=True)
class RawSplit:
    """A split's inputs (uint8 images (N, C, H, W) or float32 features (N, F)), raw labels and node ids."""

    features: np.ndarray
    labels: np.ndarray
    ids: np.ndarray | None = None


def detect_columns(table: Any, spec: SourceSpec, name: str) -> Columns:
    """Decide the columns of the rows `table` (a `datasets.Dataset`; see the module docstring).

    Raises
    ------
    DataError
        If a named column is missing or a column cannot be chosen unambiguously.
    """
    features = table.features
    columns = list(features)
    for key, column in (
        ("image-column", spec.image_column),
        ("label-column", spec.label_column),
        ("target-column", spec.target_column),
        ("partition-by", spec.partition_by),
    ):
        if column and column not in features:
            raise DataError(f"{key} {column!r} is not a column of dataset {name!r}; allowed: {', '.join(columns)}")
    image = spec.image_column or _one_of(
        [c for c in columns if c in IMAGE_COLUMNS or type(features[c]).__name__ == "Image"],
        "image-column",
        name,
        columns,
    )
    if image:
        label = spec.label_column or _one_of(
            [c for c in LABEL_COLUMNS if c in features], "label-column", name, columns, required=True
        )
        return Columns(IMAGE, (image,), label, spec.partition_by)
    target = spec.target_column or _one_of(
        [c for c in TARGET_COLUMNS if c in features], "target-column", name, columns, required=True
    )
    excluded = [target, spec.partition_by] if spec.partition_by else [target]
    inputs = tabular.feature_columns(table, spec.feature_columns, excluded, name)
    if target in inputs or (spec.partition_by and spec.partition_by in inputs):
        raise DataError(
            f"feature-columns of dataset {name!r} include the target or partition-by column; "
            f"allowed: columns other than {', '.join(excluded)}"
        )
    return Columns(TABLE, tuple(inputs), target, spec.partition_by)


def columns_of(splits: Splits, spec: SourceSpec, name: str) -> Columns:
    """The columns of `splits`: an image folder's are always `image` and `label`, whatever the run names."""
    if splits.image_folder:
        spec = dataclasses.replace(spec, image_column="", label_column="")
    return detect_columns(splits.train, spec, name)


def _one_of(candidates: list[str], key: str, name: str, columns: list[str], required: bool = False) -> str:
    """The single candidate column, '' if none is allowed to be missing; else one line saying what to set."""
    if len(candidates) == 1:
        return candidates[0]
    if not candidates and not required:
        return ""
    found = f"several candidates ({', '.join(candidates)})" if candidates else "no column it recognises"
    raise DataError(f"dataset {name!r} has {found} for {key}; set {key} to one of its columns: {', '.join(columns)}")


def extract(rows: Any, columns: Columns, spec: SourceSpec, name: str, base: Path | None) -> RawSplit:
    """The arrays of `rows` for `columns` (images decoded and converted, features as float32)."""
    if len(rows) == 0:
        raise DataError(f"dataset {name!r} holds no samples")
    if columns.kind == IMAGE:
        features = images.to_uint8(_pictures(rows, columns.inputs[0], base), spec.image_size, name)
    else:
        features = tabular.feature_matrix(rows, columns.inputs, name)
    labels = np.asarray(rows[columns.label])
    ids = np.asarray(rows[columns.partition_by]) if columns.partition_by else None
    return RawSplit(features, labels, ids)


def _pictures(rows: Any, column: str, base: Path | None) -> Iterator[Any]:
    """The PIL images of `column`: decoded by `datasets`, or opened from paths (relative to `base`) in a CSV.

    Each image is decoded once, here; one that cannot be (a corrupt or truncated file,
    a file that is no image) is a `DataError` naming its file, not a PIL traceback.
    """
    feature = rows.features[column]
    if type(feature).__name__ == "Image":
        # datasets' own decoding, one image at a time, so that a failure can name the image's file
        undecoded = rows.cast_column(column, dataclasses.replace(feature, decode=False))
        for value in undecoded[column]:
            with _naming_the_image(value["path"], column):
                picture = feature.decode_example(value)
            yield picture
        return
    from PIL import Image  # noqa: PLC0415 (only for a CSV of image paths)

    for value in rows[column]:
        path = Path(str(value))
        if not path.is_absolute() and base is not None:
            path = base / path
        allowed = "paths of image files, relative to the CSV's folder"
        with _naming_the_image(str(path), column, allowed), Image.open(path) as picture:
            picture.load()
        yield picture


@contextmanager
def _naming_the_image(path: str | None, column: str, allowed: str = "image files PIL can decode") -> Iterator[None]:
    """Turn a failure to open or decode one image into a one-line `DataError` naming its file (or its column)."""
    try:
        yield
    except (OSError, SyntaxError, ValueError) as error:
        where = f"image file {path!r}" if path else f"an image (embedded bytes) of column {column!r}"
        reason = str(error).splitlines()[0] if str(error) else ""
        if not reason or (path and path in reason):
            reason = type(error).__name__
        raise DataError(f"{where} cannot be read ({reason}); allowed: {allowed} (replace or remove it)") from None


def class_names(feature: Any) -> tuple[str, ...] | None:
    """The class names of a `ClassLabel` feature, or None for any other column type."""
    return tuple(feature.names) if type(feature).__name__ == "ClassLabel" else None


def encode_labels(
    task: str, splits: Sequence[np.ndarray], names: tuple[str, ...] | None, name: str
) -> tuple[list[np.ndarray], tuple[str, ...]]:
    """Labels of every split as int64 class indices (and the class names), or float32 targets (regression).

    Raises
    ------
    DataError
        On text targets for regression, or labels that are neither class indices nor names.
    """
    if task == REGRESSION:
        if any(values.dtype.kind not in "biuf" for values in splits):
            raise DataError(f"the target of dataset {name!r} is not numeric; allowed with task=regression: numbers")
        return [values.astype(np.float32) for values in splits], ()
    if names is not None:
        return [values.astype(np.int64) for values in splits], names
    if all(values.dtype.kind in "biuf" for values in splits):
        indices = [_integral(values, name) for values in splits]
        return indices, tuple(str(i) for i in range(int(max(int(v.max()) for v in indices)) + 1))
    texts = [values.astype(str) for values in splits]
    if all(np.char.isdigit(values).all() for values in texts):
        indices = [values.astype(np.int64) for values in texts]
        return indices, tuple(str(i) for i in range(int(max(int(v.max()) for v in indices)) + 1))
    sorted_names = tuple(sorted(set().union(*(set(values.tolist()) for values in texts))))
    lookup = {label: index for index, label in enumerate(sorted_names)}
    return [np.asarray([lookup[v] for v in values], dtype=np.int64) for values in texts], sorted_names


def _integral(values: np.ndarray, name: str) -> np.ndarray:
    """Numeric class labels as int64 indices (>= 0, whole numbers)."""
    if values.dtype.kind == "f" and not np.all(np.mod(values, 1) == 0):
        raise DataError(
            f"the label of dataset {name!r} has non-integer values; allowed with task=classification: class indices "
            "or names (set task=regression for real-valued targets)"
        )
    indices = values.astype(np.int64)
    if indices.min() < 0:
        raise DataError(f"the label of dataset {name!r} has negative values; allowed: class indices 0, 1, ...")
    return indices


def to_run_classes(labels: np.ndarray, run_names: tuple[str, ...], name: str) -> np.ndarray:
    """A node's raw class labels as the run's class indices (by index, or by name).

    Raises
    ------
    DataError
        If a label is not one of the run's classes.
    """
    if labels.dtype.kind in "biuf":
        indices = _integral(labels, name)
    else:
        texts = labels.astype(str)
        lookup = {label: index for index, label in enumerate(run_names)}
        unknown = sorted({label for label in texts.tolist() if label not in lookup})
        if unknown:
            raise DataError(
                f"dataset {name!r} has labels {unknown[:5]} that are not classes of the run; "
                f"allowed: {', '.join(run_names[:20])}{' ...' if len(run_names) > 20 else ''}"
            )
        indices = np.asarray([lookup[label] for label in texts.tolist()], dtype=np.int64)
    if len(indices) and indices.max() >= len(run_names):
        raise DataError(
            f"dataset {name!r} has labels {int(indices.min())}..{int(indices.max())}; the run's model has "
            f"{len(run_names)} classes, allowed: 0..{len(run_names) - 1}"
        )
    return indices
