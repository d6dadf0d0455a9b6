"""The bench's compute floor refuses work it cannot reproduce exactly."""

from __future__ import annotations

import pytest

from fedapp.config import ConfigError, RunConfig
from sim.overrides import app_defaults
from sim.plain_loop import plain_loop
from tests.helpers import APP_DIR


def test_the_plain_loop_refuses_work_it_cannot_reproduce() -> None:
    with pytest.raises(ConfigError, match=r"fraction-train=0\.5"):
        plain_loop(RunConfig.from_mapping({**app_defaults(APP_DIR), "fraction-train": 0.5}), num_nodes=2)
