"""Where tensors live: CUDA when present (capped to this process's GPU share), else CPU."""

from __future__ import annotations

import os
from functools import cache

import torch


@cache
def compute_device() -> torch.device:
    """Return the device for training and evaluation in this process.

    On a GPU, a simulated client that Ray gave a fraction of a GPU is held to that
    fraction of the GPU's memory, so many clients sharing one GPU cannot run it out
    of memory (PyTorch's caching allocator otherwise grows until it fails).
    """
    if not torch.cuda.is_available():
        return torch.device("cpu")
    fraction = _assigned_gpu_fraction()
    if fraction is not None and fraction < 1.0:
        torch.cuda.set_per_process_memory_fraction(fraction)
    return torch.device("cuda")


def _assigned_gpu_fraction() -> float | None:
    """The GPU share Ray assigned to this worker, or `$FEDAPP_GPU_MEMORY_FRACTION`, or None."""
    explicit = os.environ.get("FEDAPP_GPU_MEMORY_FRACTION")
    if explicit:
        return float(explicit)
    try:
        import ray  # noqa: PLC0415 (only present under simulation)

        if ray.is_initialized():
            return ray.get_runtime_context().get_assigned_resources().get("GPU")
    except ImportError:
        return None
    return None
