"""The GPU memory cap of clients that share a GPU: the cap's arithmetic and its environment override."""

from __future__ import annotations

import pytest

from fedapp.device import CONTEXT_HEADROOM, _assigned_gpu_fraction, memory_fraction_cap


@pytest.mark.parametrize(
    ("share", "cap"), [(None, None), (1.0, None), (2.0, None), (0.5, 0.45), (0.25, 0.225), (0.1, 0.09)]
)
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
