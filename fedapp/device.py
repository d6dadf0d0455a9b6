"""Where tensors live: CUDA when present (capped to this process's GPU share), else CPU."""

from __future__ import annotations

import os
from functools import cache

import torch

CONTEXT_HEADROOM = 0.1


@cache
def compute_device() -> torch.device:
    """Return the device for training and evaluation in this process.

    On a GPU, a simulated client that Ray gave a fraction of a GPU is held to that
    fraction of the GPU's memory, so many clients sharing one GPU cannot run it out
    of memory (PyTorch's caching allocator otherwise grows until it fails).
    """
    if not torch.cuda.is_available():
        return torch.device("cpu")
    cap = memory_fraction_cap(_assigned_gpu_fraction())
    if cap is not None:
        torch.cuda.set_per_process_memory_fraction(cap)
    return torch.device("cuda")


def memory_fraction_cap(share: float | None) -> float | None:
    """The share of GPU memory PyTorch may allocate in a process given `share` of a GPU, or None (no cap).

    A process holding less than a whole GPU is capped below its share by
    `CONTEXT_HEADROOM`: the cap counts only PyTorch's allocations, while each process's
    CUDA context (hundreds of MB) comes on top, so n processes with 1/n GPU each still fit.
    """
    if share is None or share >= 1.0:
        return None
    if share <= 0:
        raise ValueError(f"GPU share {share} is not allowed; allowed: a number > 0")
    return share * (1.0 - CONTEXT_HEADROOM)


def _assigned_gpu_fraction() -> float | None:
    """The GPU share Ray assigned to this worker, or `$FEDAPP_GPU_MEMORY_FRACTION`, or None.

    Only Ray workers (the simulation's actors) have a share; the simulation's driver,
    where the server evaluates centrally, is connected to Ray too but holds none
    (and Ray refuses to answer there).
    """
    explicit = os.environ.get("FEDAPP_GPU_MEMORY_FRACTION")
    if explicit:
        return float(explicit)
    try:
        import ray  # noqa: PLC0415 (only present under simulation)
    except ImportError:
        return None
    if not ray.is_initialized():
        return None
    context = ray.get_runtime_context()
    if context.worker.mode != ray.WORKER_MODE:
        return None
    return context.get_assigned_resources().get("GPU")
