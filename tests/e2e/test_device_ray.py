"""The GPU memory cap read from Ray: a local Ray that declares one GPU hands a worker its share (on CPU)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator

import pytest
import ray

from fedapp.device import _assigned_gpu_fraction


@pytest.fixture
def ray_with_one_gpu() -> Iterator[None]:
    """A private local Ray that declares one GPU (bookkeeping only), shut down at the end."""
    temp_dir = tempfile.mkdtemp(prefix="fedapp-ray-", dir="/tmp")
    ray.init(num_cpus=1, num_gpus=1, include_dashboard=False, _temp_dir=temp_dir, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_a_ray_worker_reads_its_gpu_share_and_the_driver_has_none(ray_with_one_gpu: None) -> None:
    @ray.remote(num_cpus=0, num_gpus=0.25)
    def worker_share() -> float | None:
        return _assigned_gpu_fraction()

    assert ray.get(worker_share.remote()) == pytest.approx(0.25)
    assert _assigned_gpu_fraction() is None  # the driver (the server's central evaluation) holds no share
