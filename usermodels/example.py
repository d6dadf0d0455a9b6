"""A worked example of a user's model: a small CNN for any image size, or a linear model for tables.

Run it with `python -m sim run -c 'model=usermodels.example:small_cnn'` (docs/data.md).
"""

from __future__ import annotations

from torch import nn


def small_cnn(input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """Two 3x3 convolutions of 16 and 32 channels with 2x2 pooling, then a linear layer.

    Takes images (C, H, W) of any size (H and W are halved twice, so at least 4).
    """
    if len(input_shape) != 3:
        raise ValueError(f"small_cnn takes images (C x H x W), not {input_shape}")
    channels, height, width = input_shape
    return nn.Sequential(
        nn.Conv2d(channels, 16, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * (height // 4) * (width // 4), num_outputs),
    )


def linear(input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """One linear layer over the flattened input: linear regression with one output."""
    features = 1
    for size in input_shape:
        features *= size
    return nn.Sequential(nn.Flatten(), nn.Linear(features, num_outputs))
