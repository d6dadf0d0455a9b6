"""The models: the FedAvg paper's MNIST CNN and 2NN, NIID-Bench's small CNN, logistic regression.

McMahan et al. 2017 (arXiv:1602.05629), section 3:
- `2nn`: a multilayer perceptron with two hidden layers of 200 ReLU units
  (784-200-200-10, 199,210 parameters);
- `cnn`: two 5x5 convolutions (32 and 64 channels), each followed by 2x2 max pooling,
  a fully connected layer of 512 ReLU units and a softmax output
  (1,663,370 parameters with 'same' padding).
NIID-Bench (Li et al. 2022, `SimpleCNNMNIST` in its `model.py`):
- `cnn-small`: 5x5 convolutions of 6 and 16 channels without padding, each followed
  by ReLU and 2x2 max pooling, then 256-120-84-10 fully connected (44,426 parameters).
Logistic regression (`logreg`) is the FedProx paper's model for its Synthetic(alpha, beta) data.

`cnn-bn` and `cnn-small-bn` are the two CNNs with a BatchNorm layer after each
convolution (conv -> BN -> ReLU, as FedBN's digit model, Li et al. 2021), the models
FedBN needs. FedBN's model also normalises its hidden fully connected layers; ours
do not, because a BatchNorm1d layer cannot train on a trailing batch of one sample.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from strategies.seeding import derive_seed


def _conv_block(in_channels: int, out_channels: int, padding: int, batch_norm: bool) -> list[nn.Module]:
    """A 5x5 convolution, optionally batch-normalised, then ReLU and 2x2 max pooling."""
    norm = [nn.BatchNorm2d(out_channels)] if batch_norm else []
    return [nn.Conv2d(in_channels, out_channels, kernel_size=5, padding=padding), *norm, nn.ReLU(), nn.MaxPool2d(2)]


class CNN(nn.Module):
    """FedAvg-paper CNN for 1x28x28 inputs (with `batch_norm`, BatchNorm after each convolution)."""

    def __init__(self, num_classes: int = 10, batch_norm: bool = False) -> None:
        super().__init__()
        self.features = nn.Sequential(*_conv_block(1, 32, 2, batch_norm), *_conv_block(32, 64, 2, batch_norm))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(64 * 7 * 7, 512), nn.ReLU(), nn.Linear(512, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits for a batch shaped (N, 1, 28, 28)."""
        return self.classifier(self.features(x))


class SmallCNN(nn.Module):
    """NIID-Bench's `SimpleCNNMNIST` for 1x28x28 inputs (with `batch_norm`, BatchNorm after each convolution)."""

    def __init__(self, num_classes: int = 10, batch_norm: bool = False) -> None:
        super().__init__()
        self.features = nn.Sequential(*_conv_block(1, 6, 0, batch_norm), *_conv_block(6, 16, 0, batch_norm))
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 4 * 4, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
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


IMAGE_MODELS: dict[str, tuple[type[CNN] | type[SmallCNN], bool]] = {
    "cnn": (CNN, False),
    "cnn-bn": (CNN, True),
    "cnn-small": (SmallCNN, False),
    "cnn-small-bn": (SmallCNN, True),
}
FLAT_MODELS: dict[str, type[TwoNN] | type[LogisticRegression]] = {"2nn": TwoNN, "logreg": LogisticRegression}
BATCH_NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, seed: int) -> nn.Module:
    """Build model `name` for inputs of `input_shape`, initialized from the run `seed`.

    The same (name, shape, seed) always gives the same weights, on every node.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "model-init", name))
        if name in IMAGE_MODELS:
            if tuple(input_shape) != (1, 28, 28):
                raise ValueError(f"model {name!r} needs 1x28x28 inputs; this dataset gives {input_shape}")
            model_class, batch_norm = IMAGE_MODELS[name]
            return model_class(num_classes, batch_norm)
        if name in FLAT_MODELS:
            return FLAT_MODELS[name](math.prod(input_shape), num_classes)
    raise ValueError(f"unknown model {name!r}; allowed: {', '.join([*IMAGE_MODELS, *FLAT_MODELS])}")


def batch_norm_keys(model: nn.Module) -> list[str]:
    """The state_dict keys of `model`'s BatchNorm layers: weights, biases, running statistics, counters."""
    return [
        f"{module_name}.{key}"
        for module_name, module in model.named_modules()
        if isinstance(module, BATCH_NORM_LAYERS)
        for key in module.state_dict()
    ]


def parameter_keys(model: nn.Module) -> list[str]:
    """The state_dict keys of `model`'s trainable parameters (not its buffers)."""
    return [name for name, parameter in model.named_parameters() if parameter.requires_grad]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
