"""A node's own dataset on its own disk: what a SuperNode started with `data-path` trains on.

On an edge node the data never leaves the machine. `--node-config 'data-path="/srv/data"'`
points the node's ClientApp at a local dataset in any layout a run's dataset may have
(`hub.py`): a parquet or CSV file, a folder of them (what `python -m deploy node-data`
writes), or an image folder `<data-path>/<class>/<image>`. Its columns are found as
the run's are (`image-column`, `label-column`, `target-column`, `feature-columns`), its
images resized to `image-size`; class labels are class indices, or class names of the
run's dataset, so a node that lacks some classes still labels the rest right.

The files are parsed once and cached as NumPy arrays under a key made of the path, the
column settings and every file's size and modification time: Flower's deployment
runtime starts a fresh ClientApp process for every message, and those processes then
load a small archive instead of importing `datasets` and decoding images again.
Changing a file makes a new cache entry.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fedapp.data import hub, rows
from fedapp.data.cache import cache_key, cached_arrays
from fedapp.data.sources import local_version
from fedapp.data.spec import DataError, SourceSpec

FORMATS = ("parquet", "imagefolder")
DATA_FILE = "data.parquet"


def load_local_dataset(path: Path, columns: SourceSpec) -> rows.RawSplit:
    """The raw inputs and labels of the node dataset at `path`, read with the run's column settings.

    Raises
    ------
    DataError
        If `path` does not exist, holds nothing readable, or lacks the run's columns;
        the message names the path.
    """
    if not path.exists():
        raise DataError(f"data-path {str(path)!r} does not exist on this node")
    spec = dataclasses.replace(columns, name=str(path))
    arrays = cached_arrays(f"local-{cache_key(spec, local_version(str(path)))}", lambda: _parse(spec))
    return rows.RawSplit(arrays["features"], arrays["labels"])


def _parse(spec: SourceSpec) -> dict[str, np.ndarray]:
    """Read every split of the node's files and keep its inputs and labels (slow: once per change of the files)."""
    from datasets import concatenate_datasets  # noqa: PLC0415 (heavy import, only on a cache miss)

    splits = hub.read(spec.name, "data-path")
    table = concatenate_datasets([splits.train, splits.test]) if splits.test is not None else splits.train
    columns = rows.columns_of(
        hub.Splits(table, None, splits.base, splits.image_folder), dataclasses.replace(spec, partition_by=""), spec.name
    )
    raw = rows.extract(table, columns, spec, f"data-path {spec.name}", splits.base)
    return {"features": raw.features, "labels": raw.labels}


def write_local_dataset(
    path: Path,
    features: np.ndarray,
    labels: np.ndarray,
    layout: str = "parquet",
    input_names: Sequence[str] = ("image",),
    label_name: str = "label",
) -> Path:
    """Write samples as a node dataset in `layout` under folder `path`; return the folder (`data-path`).

    `features` are uint8 images (N, C, H, W), written as an image column
    (`input_names[0]`) and a label column (`label_name`), or one PNG per sample under
    `<path>/<label>/`; or table rows (N, F), written as the columns `input_names` and
    `label_name`: the columns the run reads (`sources.Source`). The files are written beside
    the folder and moved into place at the end, so a folder is complete or absent; a
    folder that already holds files is refused, so no node's data is ever overwritten.
    """
    if layout not in FORMATS:
        raise ValueError(f"layout {layout!r} is not allowed; allowed: {', '.join(FORMATS)}")
    if features.ndim != 4 and layout != "parquet":
        raise ValueError(f"layout {layout!r} is for images; allowed for a table: parquet")
    if path.exists() and any(path.iterdir()):
        raise ValueError(f"{path} already holds files; choose an empty folder (node data is never overwritten)")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        if features.ndim != 4:
            _write_table(staging / DATA_FILE, features, labels, input_names, label_name)
        elif layout == "parquet":
            _write_parquet(staging / DATA_FILE, features, labels, input_names[0], label_name)
        else:
            _write_image_folder(staging, features, labels)
        staging.chmod(0o755)
        staging.replace(path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def _picture(image: np.ndarray) -> object:
    """A (C, H, W) uint8 array as a PIL image: one channel is grayscale, three are RGB."""
    from PIL import Image as PILImage  # noqa: PLC0415

    if image.shape[0] == 1:
        return PILImage.fromarray(image[0], mode="L")
    return PILImage.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0)), mode="RGB")


def _write_parquet(file: Path, images: np.ndarray, labels: np.ndarray, image_name: str, label_name: str) -> None:
    """One parquet file with an image (PNG) and a label column."""
    from datasets import Dataset, Features, Image, Value, disable_progress_bars  # noqa: PLC0415 (heavy import)

    features = Features({image_name: Image(), label_name: Value(_value_type(labels))})
    table = Dataset.from_dict(
        {image_name: [_picture(image) for image in images], label_name: labels.tolist()}, features=features
    )
    disable_progress_bars()
    table.to_parquet(str(file))


def _write_table(file: Path, matrix: np.ndarray, targets: np.ndarray, names: Sequence[str], target: str) -> None:
    """One parquet file with the feature columns `names` and the target column `target`."""
    from datasets import Dataset, disable_progress_bars  # noqa: PLC0415 (heavy import)

    if len(names) != matrix.shape[1] or target in names:
        raise DataError(f"cannot name {matrix.shape[1]} feature columns with {list(names)} beside target {target!r}")
    columns = {name: matrix[:, i] for i, name in enumerate(names)}
    disable_progress_bars()
    Dataset.from_dict({**columns, target: targets}).to_parquet(str(file))


def _value_type(labels: np.ndarray) -> str:
    return "float32" if labels.dtype.kind == "f" else "int64"


def _write_image_folder(folder: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """One PNG per sample in `<folder>/<label>/<index>.png`."""
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        target = folder / str(int(label))
        target.mkdir(exist_ok=True)
        _picture(image).save(target / f"{index:06d}.png")  # type: ignore[attr-defined]
