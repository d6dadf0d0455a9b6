"""Simulation presets: how many simulated nodes and what each client may use.

`client-resources-num-cpus` is also each client's torch thread budget (Ray sets
OMP_NUM_THREADS from it); `client-resources-num-gpus` is a GPU share, so 0.25 puts
four clients on one GPU at a time.
"""

from __future__ import annotations

PRESETS: dict[str, dict[str, int | float]] = {
    "cpu": {"num-supernodes": 10, "client-resources-num-cpus": 1, "client-resources-num-gpus": 0.0},
    "gpu": {"num-supernodes": 10, "client-resources-num-cpus": 1, "client-resources-num-gpus": 0.25},
}

# What a plain `flwr run .` gets on the SuperLink `python -m sim` started (docs/tracking.md).
DEFAULT_FEDERATION = PRESETS["cpu"]


def federation_settings(preset: str, nodes: int | None) -> dict[str, int | float]:
    """The simulation settings of `preset`, with `nodes` simulated SuperNodes if given."""
    settings = dict(PRESETS[preset])
    if nodes is not None:
        settings["num-supernodes"] = nodes
    return settings
