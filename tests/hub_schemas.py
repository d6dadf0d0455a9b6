"""Datasets the tests generate in the exact schemas of the hub datasets fedapp's presets read.

- `uoft-cs/cifar10`: an `img` column of 32x32 RGB PNG images and a `label` `ClassLabel`
  of the ten CIFAR-10 names, `train` and `test` splits;
- `flwrlabs/femnist`: an `image` column of 28x28 grayscale PNG images, a `writer_id`
  string, an `hsf_id` integer and a `character` `ClassLabel` of 62 names, one `train`
  split (as on the hub);
- a table: numeric feature columns, a text column, a target and optionally a writer
  column, as a CSV file.

The pixel values carry a signal that crops and flips keep (each class tints the
noise with its own colour; the FEMNIST-like set uses 4 of its 62 classes, as grey
levels), so two rounds of training measurably beat chance.
"""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, Features, Value
from datasets import Image as ImageFeature
from PIL import Image

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FEMNIST_CLASSES = tuple(string.digits + string.ascii_uppercase + string.ascii_lowercase)


def _images(labels: np.ndarray, size: int, channels: int, rng: np.random.Generator) -> list:
    """Noise images tinted by class: class k adds its own colour (or grey level), which crops and flips keep."""
    palette = [(180 * (k % 2), 90 * (k // 2 % 3), 60 * (k // 6 % 4)) for k in range(64)]
    pictures = []
    for label in labels:
        pixels = rng.integers(0, 60, size=(size, size, channels)).astype(np.int64)
        pixels += np.asarray(palette[int(label)][:channels]) if channels == 3 else 45 * int(label)
        pixels = np.clip(pixels, 0, 255).astype(np.uint8)
        pictures.append(Image.fromarray(pixels[..., 0], mode="L") if channels == 1 else Image.fromarray(pixels, "RGB"))
    return pictures


def write_cifar10_like(folder: Path, num_train: int = 200, num_test: int = 50, seed: int = 0) -> Path:
    """`folder/train.parquet` and `folder/test.parquet` in `uoft-cs/cifar10`'s schema; returns `folder`."""

    rng = np.random.default_rng(seed)
    features = Features({"img": ImageFeature(), "label": ClassLabel(names=list(CIFAR10_CLASSES))})
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", num_train), ("test", num_test)):
        labels = rng.integers(0, 10, count)
        rows = {"img": _images(labels, 32, 3, rng), "label": labels.tolist()}
        Dataset.from_dict(rows, features=features).to_parquet(str(folder / f"{split}.parquet"))
    return folder


def write_femnist_like(folder: Path, num_writers: int = 6, per_writer: int = 30, seed: int = 0) -> Path:
    """`folder/train.parquet` in `flwrlabs/femnist`'s schema (one split, as on the hub); returns `folder`."""

    rng = np.random.default_rng(seed)
    count = num_writers * per_writer
    labels = rng.integers(0, 4, count)
    features = Features(
        {
            "image": ImageFeature(),
            "writer_id": Value("string"),
            "hsf_id": Value("int64"),
            "character": ClassLabel(names=list(FEMNIST_CLASSES)),
        }
    )
    rows = {
        "image": _images(labels, 28, 1, rng),
        "writer_id": [f"f{index // per_writer:04d}_{index // per_writer % 7:02d}" for index in range(count)],
        "hsf_id": [index % 4 for index in range(count)],
        "character": labels.tolist(),
    }
    folder.mkdir(parents=True, exist_ok=True)
    Dataset.from_dict(rows, features=features).to_parquet(str(folder / "train.parquet"))
    return folder


def write_table_csv(path: Path, count: int = 120, seed: int = 0, writers: int = 0) -> Path:
    """A CSV with numeric features `x1`, `x2`, `x3`, a text column `city`, and `y` = 3 x1 - 0.2 x2 + noise.

    With `writers` > 0, a last text column `writer_id` in FEMNIST's format names the
    writer of each row (`writers` of them, in consecutive blocks), to split by.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, 3)) * [1.0, 10.0, 0.1] + [5.0, -3.0, 0.0]
    y = 3 * x[:, 0] - 0.2 * x[:, 1] + rng.normal(scale=0.1, size=count)
    writer_ids = [f",f{i * writers // count:04d}_00" if writers else "" for i in range(count)]
    lines = ["x1,x2,x3,city,y" + (",writer_id" if writers else "")]
    lines += [
        f"{a:.6f},{b:.6f},{c:.6f},{'ab'[i % 2]},{t:.6f}{writer_ids[i]}"
        for i, ((a, b, c), t) in enumerate(zip(x, y, strict=True))
    ]
    path.write_text("\n".join(lines) + "\n")
    return path
