"""Model factories that misbehave, for the tests of `check_model` (`model = "tests.factories:<name>"`)."""

from __future__ import annotations

from torch import nn


def one_output_too_many(input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """A linear model with num_outputs + 1 outputs: not what the run needs."""
    features = 1
    for size in input_shape:
        features *= size
    return nn.Sequential(nn.Flatten(), nn.Linear(features, num_outputs + 1))


def not_a_module(input_shape: tuple[int, ...], num_outputs: int) -> object:
    """Returns something that is not a model."""
    return (input_shape, num_outputs)
