"""A node's own dataset on its own disk: what a SuperNode started with `data-path` trains on.

On an edge node the data never leaves the machine. `--node-config 'data-path="/srv/data"'`
points the node's ClientApp at a local dataset in one of two layouts:

- parquet: one `.parquet` file, or a folder holding `.parquet` files, with an image
  column (`image` or `img`) and a `label` column (what `python -m deploy node-data` writes);
- image folder: `<data-path>/<label>/<any name>.png|jpg`, each subfolder named by the
  class index (`0`, `1`, ...), so a node that lacks some classes still labels the rest right.

Images must be 28x28 (they are converted to grayscale). The folder is parsed once with
Hugging Face `datasets` and cached as NumPy arrays under a key made of the path and every
file's size and modification time: Flower's deployment runtime starts a fresh ClientApp
process for every message, and those processes then load a small archive instead of
importing `datasets` and decoding images again. Changing a file makes a new cache entry.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from fedapp.data.cache import cache_key, cached_arrays
from fedapp.data.hub import image_array

PARQUET_SUFFIX = ".parquet"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
FORMATS = ("parquet", "imagefolder")


def load_local_dataset(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return (uint8 images shaped (N, 28, 28), int64 labels) of the dataset at `path`.

    Raises
    ------
    ValueError
        If `path` does not exist, holds no supported files, or its images or labels
        are not what fedapp's models need; the message names the path.
    """
    if not path.exists():
        raise ValueError(f"data-path {str(path)!r} does not exist on this node")
    files = _data_files(path)
    fingerprint = [(str(file.relative_to(path) if file != path else file.name), *_stat(file)) for file in files]
    arrays = cached_arrays(f"local-{cache_key(str(path), fingerprint)}", lambda: _parse(path, files))
    return arrays["images"], arrays["labels"]


def write_local_dataset(path: Path, images: np.ndarray, labels: np.ndarray, layout: str = "parquet") -> Path:
    """Write `images` (uint8, (N, 28, 28)) and `labels` as a node dataset in `layout` under folder `path`.

    Returns the folder, which is what `data-path` should point at. The files are written
    beside it and moved into place at the end, so a folder is complete or absent; a
    folder that already holds files is refused, so no node's data is ever overwritten.
    """
    if layout not in FORMATS:
        raise ValueError(f"layout {layout!r} is not allowed; allowed: {', '.join(FORMATS)}")
    if path.exists() and any(path.iterdir()):
        raise ValueError(f"{path} already holds files; choose an empty folder (node data is never overwritten)")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        if layout == "parquet":
            _write_parquet(staging / f"data{PARQUET_SUFFIX}", images, labels)
        else:
            _write_image_folder(staging, images, labels)
        staging.chmod(0o755)
        staging.replace(path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def _data_files(path: Path) -> list[Path]:
    """The dataset's files: the parquet file itself, a folder's parquet files, or its images."""
    if path.is_file():
        if path.suffix != PARQUET_SUFFIX:
            raise ValueError(
                f"data-path {str(path)!r} is a file but not {PARQUET_SUFFIX}; allowed: a parquet file or a folder"
            )
        return [path]
    parquet = sorted(path.rglob(f"*{PARQUET_SUFFIX}"))
    if parquet:
        return parquet
    images = sorted(file for file in path.rglob("*") if file.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise ValueError(
            f"data-path {str(path)!r} holds no {PARQUET_SUFFIX} files and no images; allowed: parquet file(s) or "
            "an image folder <data-path>/<label>/<image>"
        )
    return images


def _stat(file: Path) -> tuple[int, int]:
    info = file.stat()
    return info.st_size, info.st_mtime_ns


def _parse(path: Path, files: list[Path]) -> dict[str, np.ndarray]:
    """Decode the dataset with Hugging Face `datasets` (slow: once per change of the files)."""
    from datasets import load_dataset  # noqa: PLC0415 (heavy import, only on a cache miss)

    if files[0].suffix == PARQUET_SUFFIX:
        rows = load_dataset("parquet", data_files=[str(file) for file in files], split="train")
    else:
        rows = load_dataset("imagefolder", data_dir=str(path), split="train")
    if len(rows) == 0:
        raise ValueError(f"data-path {str(path)!r} holds no samples")
    return {"images": image_array(rows, str(path)), "labels": _labels(rows, str(path))}


def _labels(rows: Any, name: str) -> np.ndarray:
    """The label column as int64 class indices (class names of a `ClassLabel` must be those indices)."""
    values = np.asarray(rows["label"], dtype=np.int64)
    names = getattr(rows.features["label"], "names", None)
    if names is None:
        return values
    if not all(str(label).isdigit() for label in names):
        raise ValueError(
            f"dataset {name!r} names its classes {names[:5]}...; fedapp needs the class index as the name "
            "(image subfolders '0', '1', ...), so every node labels the same class alike"
        )
    return np.asarray([int(label) for label in names], dtype=np.int64)[values]


def _write_parquet(file: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """One parquet file with an `image` (PNG) and an integer `label` column."""
    from datasets import Dataset, Features, Image, Value, disable_progress_bars  # noqa: PLC0415 (heavy import)
    from PIL import Image as PILImage  # noqa: PLC0415

    features = Features({"image": Image(), "label": Value("int64")})
    rows = Dataset.from_dict(
        {"image": [PILImage.fromarray(image, mode="L") for image in images], "label": labels.tolist()},
        features=features,
    )
    disable_progress_bars()
    rows.to_parquet(str(file))


def _write_image_folder(folder: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """One PNG per sample in `<folder>/<label>/<index>.png`."""
    from PIL import Image as PILImage  # noqa: PLC0415

    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        target = folder / str(int(label))
        target.mkdir(exist_ok=True)
        PILImage.fromarray(image, mode="L").save(target / f"{index:06d}.png")
