"""Datasets from the Hugging Face hub (or a local dataset folder) through `FederatedDataset`.

For users who are online, `dataset = "owner/name"` loads a hub dataset; an absolute
path to a local folder of parquet/CSV/image files works offline. `FederatedDataset`
loads and shuffles the `train` and `test` splits; they are converted once to NumPy
arrays and cached on disk, then partitioned exactly like the embedded data.
Images must be 28x28 grayscale (MNIST-like: mnist, fashion_mnist, kmnist, ...).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from fedapp.data.cache import cache_key, cached_arrays

SHUFFLE_SEED = 42
IMAGE_COLUMNS = ("image", "img")


def load_hub_dataset(name: str) -> dict[str, np.ndarray]:
    """Return `train_features`, `train_labels`, `test_features`, `test_labels` of dataset `name`."""
    version = os.path.getmtime(name) if os.path.isabs(name) else ""
    return cached_arrays(f"hub-{cache_key(name, version)}", lambda: _download(name))


def _download(name: str) -> dict[str, np.ndarray]:
    """Load both splits through `FederatedDataset` and convert them to arrays."""
    from flwr_datasets import FederatedDataset  # noqa: PLC0415 (heavy import, only on a cache miss)

    federated = FederatedDataset(dataset=name, partitioners={"train": 1}, shuffle=True, seed=SHUFFLE_SEED)
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        rows = federated.load_split(split)
        arrays[f"{split}_features"] = image_array(rows, name)
        arrays[f"{split}_labels"] = np.asarray(rows["label"], dtype=np.int64)
    return arrays


def image_array(rows: Any, name: str) -> np.ndarray:
    """Stack a split's image column as uint8 (N, 28, 28), or explain what is wrong."""
    column = next((c for c in IMAGE_COLUMNS if c in rows.column_names), None)
    if column is None or "label" not in rows.column_names:
        raise ValueError(
            f"dataset {name!r} has columns {rows.column_names}; fedapp needs an image column "
            f"({' or '.join(IMAGE_COLUMNS)}) and a 'label' column"
        )
    images = np.stack([np.asarray(image.convert("L"), dtype=np.uint8) for image in rows[column]])
    if images.shape[1:] != (28, 28):
        raise ValueError(f"dataset {name!r} has {images.shape[1]}x{images.shape[2]} images; fedapp's models need 28x28")
    return images
