"""The GPU memory cap of clients that share a GPU, checked on CPU with Ray's declared GPU resources.

Ray hands out GPU shares by bookkeeping alone, so a Ray started with `num_gpus=1`
on a machine without a GPU still gives a task 0.25 of "a GPU" and reports it, which
is what `compute_device` reads to cap PyTorch's allocator on a real GPU.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator

import pytest
import ray

from fedapp.device import CONTEXT_HEADROOM, _assigned_gpu_fraction, memory_fraction_cap


@pytest.mark.parametrize(("share", "cap"), [(None, None), (1.0, None), (2.0, None), (0.5, 0.45), (0.25, 0.225), (0.1, 0.09)])
def test_a_fractional_share_caps_memory_below_the_share(share: float | None, cap: float | None) -> None:
    assert memory_fraction_cap(share) == pytest.approx(cap)


def test_caps_of_processes_sharing_a_gpu_leave_room_for_their_contexts() -> None:
    for processes in (2, 4, 10):
        assert processes * memory_fraction_cap(1 / processes) == pytest.approx(1.0 - CONTEXT_HEADROOM)


def test_a_zero_share_is_refused() -> None:
    with pytest.raises(ValueError, match="GPU share 0"):
        memory_fraction_cap(0.0)


def test_explicit_fraction_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDAPP_GPU_MEMORY_FRACTION", "0.3")
    assert _assigned_gpu_fraction() == pytest.approx(0.3)


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
