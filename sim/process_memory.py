"""Peak memory of a process tree (SuperLink, SuperExec, simulation driver, Ray and its actors) or a GPU.

A simulation's memory is spread over many processes that come and go during a run
(Ray's GCS, raylet and agents, one worker per actor), so it is sampled: every
`interval` seconds a background thread measures (e.g. sums the resident set size of
the root and all of its descendants, `tree_rss`) and keeps the largest value seen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import psutil


def tree_rss(root: psutil.Process) -> int:
    """Resident bytes of `root` and all its descendants right now (processes that vanish count 0)."""
    total = 0
    try:
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for proc in family:
        try:
            total += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


class PeakSampler:
    """Samples `measure()` (bytes) in a background thread while used as a context manager; keeps the peak."""

    def __init__(self, measure: Callable[[], int], interval: float = 0.5) -> None:
        self.measure = measure
        self.interval = interval
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="peak-tree-memory", daemon=True)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while True:
            self.peak_bytes = max(self.peak_bytes, self.measure())
            if self._stop.wait(self.interval):
                return
