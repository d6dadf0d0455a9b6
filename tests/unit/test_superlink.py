"""Which Ray the local simulation SuperLink's runs use: the cluster asked for, or one of their own."""

from __future__ import annotations

import pytest
from ray._private.services import canonicalize_bootstrap_address

from sim.superlink import superlink_environment


def test_without_a_cluster_address_every_run_starts_a_ray_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.9:6379")  # a stray address in the user's shell must not leak in
    environment = superlink_environment(None)
    assert environment["RAY_ADDRESS"] == "local"
    # Ray reads "local" as "start a new local instance", even when `ray start` runs a cluster on this
    # machine (which `ray.init()` without an address would attach to).
    monkeypatch.setenv("RAY_ADDRESS", environment["RAY_ADDRESS"])
    assert canonicalize_bootstrap_address(None) is None


def test_a_cluster_address_reaches_the_superlinks_simulations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    environment = superlink_environment("127.0.0.1:6379")
    assert environment["RAY_ADDRESS"] == "127.0.0.1:6379"
    assert environment["FLWR_TELEMETRY_ENABLED"] == "0"
