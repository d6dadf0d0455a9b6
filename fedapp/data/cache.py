"""The on-disk cache for parsed data and partition indices.

A ClientApp message in deployment runs in a fresh process, and Ray actors in
simulation start cold, so anything expensive to derive (parsing the embedded CSV,
partitioning with flwr-datasets) is computed once per machine and stored here as
NumPy archives. Writes are atomic, so concurrent processes never read half a file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fedapp.atomic import atomic_write


def cache_dir() -> Path:
    """The cache folder: `$FEDAPP_CACHE_DIR`, else `$XDG_CACHE_HOME/fedapp`, else `~/.cache/fedapp`."""
    explicit = os.environ.get("FEDAPP_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fedapp"


def cache_key(*parts: object) -> str:
    """A short, stable file-name-safe digest of `parts`."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def cached_arrays(name: str, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Return the arrays stored under `name`, building and storing them on a miss."""
    path = cache_dir() / f"{name}.npz"
    if path.exists():
        with np.load(path) as archive:
            return {k: archive[k] for k in archive.files}
    arrays = build()
    atomic_write(path, lambda file: np.savez(file, **arrays))
    return arrays
