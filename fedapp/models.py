"""The models: the FedAvg paper's MNIST CNN and 2NN, and multinomial logistic regression.

McMahan et al. 2017 (arXiv:1602.05629), section 3:
- 2NN: a multilayer perceptron with two hidden layers of 200 ReLU units
  (784-200-200-10, 199,210 parameters);
- CNN: two 5x5 convolutions (32 and 64 channels), each followed by 2x2 max pooling,
  a fully connected layer of 512 ReLU units and a softmax output
  (1,663,370 parameters with 'same' padding).
Logistic regression is the FedProx paper's model for its Synthetic(alpha, beta) data.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from strategies.seeding import derive_seed


class CNN(nn.Module):
    """FedAvg-paper CNN for 1x28x28 inputs."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * 7 * 7, 512), nn.ReLU(), nn.Linear(512, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits for a batch shaped (N, 1, 28, 28)."""
        return self.classifier(self.features(x))


class TwoNN(nn.Module):
    """FedAvg-paper 2NN: 784-200-200-10 with ReLU."""

    def __init__(self, in_features: int = 784, num_classes: int = 10) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_features, 200),
            nn.ReLU(),
            nn.Linear(200, 200),
            nn.ReLU(),
            nn.Linear(200, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits; any input shape is flattened per sample."""
        return self.layers(x)


class LogisticRegression(nn.Module):
    """Multinomial logistic regression (one linear layer; softmax is in the loss)."""

    def __init__(self, in_features: int = 784, num_classes: int = 10) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(in_features, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits; any input shape is flattened per sample."""
        return self.layers(x)


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, seed: int) -> nn.Module:
    """Build model `name` for inputs of `input_shape`, initialized from the run `seed`.

    The same (name, shape, seed) always gives the same weights, on every node.
    """
    in_features = math.prod(input_shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "model-init", name))
        if name == "cnn":
            if tuple(input_shape) != (1, 28, 28):
                raise ValueError(f"model 'cnn' needs 1x28x28 inputs; this dataset gives {input_shape}")
            return CNN(num_classes)
        if name == "2nn":
            return TwoNN(in_features, num_classes)
        if name == "logreg":
            return LogisticRegression(in_features, num_classes)
    raise ValueError(f"unknown model {name!r}; allowed: cnn, 2nn, logreg")


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
