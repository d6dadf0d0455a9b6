"""The models: the FedAvg paper's MNIST CNN and 2NN, NIID-Bench's small CNN, logistic regression, an MLP, ResNets,
or your own.

McMahan et al. 2017 (arXiv:1602.05629), section 3:
- `2nn`: a multilayer perceptron with two hidden layers of 200 ReLU units
  (784-200-200-10, 199,210 parameters);
- `cnn`: two 5x5 convolutions (32 and 64 channels), each followed by 2x2 max pooling,
  a fully connected layer of 512 ReLU units and a softmax output
  (1,663,370 parameters with 'same' padding).
NIID-Bench (Li et al. 2022, `SimpleCNNMNIST` in its `model.py`):
- `cnn-small`: 5x5 convolutions of 6 and 16 channels without padding, each followed
  by ReLU and 2x2 max pooling, then 256-120-84-10 fully connected (44,426 parameters).
Logistic regression (`logreg`) is the FedProx paper's model for its Synthetic(alpha, beta) data
(with one output it is linear regression).

`cnn-bn` and `cnn-small-bn` are the two CNNs with a BatchNorm layer after each
convolution (conv -> BN -> ReLU, as FedBN's digit model, Li et al. 2021), the models
FedBN needs. FedBN's model also normalises its hidden fully connected layers; ours
do not, because a BatchNorm1d layer cannot train on a trailing batch of one sample.

- `mlp`: any input width, hidden layers of `hidden-sizes` ReLU units (scikit-learn's
  MLP default, one layer of 100, unless set); `hidden-sizes = "5"` with one output is
  the 10 -> 5 -> 1 regression network of the regression preset.
- `resnet8`: FedDF's CIFAR ResNet-8 (Lin et al. 2020; the authors' `ResNet_cifar` in
  `pcode/models/resnet.py` with `resnet_size=8`): a 3x3 convolution of 16 channels,
  then one torchvision `BasicBlock` per stage of 16, 32 and 64 channels (strides 1, 2,
  2; 1x1 convolution shortcuts where the shape changes), average pooling and a linear
  classifier; convolutions initialised N(0, 2 / (k^2 out_channels)) and batch norms to
  (1, 0) as theirs. 78,042 parameters for 3x32x32 and 10 classes. Deliberate
  difference: adaptive average pooling instead of a fixed 8x8 window (the same at
  32x32), so other image sizes work too.
- `resnet18`: torchvision's ResNet-18 adapted to small images the usual way (a 3x3,
  stride-1 first convolution for the data's channels and no max pooling), 11.2M
  parameters.
- `package.module:factory`: your own; `factory(input_shape, num_outputs)` returns an
  `nn.Module` taking (N, *input_shape) and giving (N, num_outputs). The module must
  be importable wherever the server and clients run: put it under `usermodels/` (the
  FAB carries that folder to every node) or install it as a package there.

Batch-norm statistics (ResNets, the `-bn` CNNs) are part of the weights the strategies
average (FedBN keeps them on the nodes). Every model is initialised from the run seed,
so every node builds the same one.
"""

from __future__ import annotations

import importlib
import itertools
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from fedapp.choices import BUILTIN_MODELS, FACTORY_RULE, IMAGE_MODELS, MNIST_CNNS, is_factory
from strategies.seeding import derive_seed

DEFAULT_HIDDEN_SIZES = (100,)


class ModelError(ValueError):
    """A model cannot be built for the run's data, or a user's factory cannot be imported or misbehaves."""


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


BATCH_NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


class MLP(nn.Module):
    """A multilayer perceptron: any input flattened, ReLU hidden layers of `hidden_sizes` units."""

    def __init__(self, in_features: int, hidden_sizes: Sequence[int], num_outputs: int) -> None:
        super().__init__()
        widths = [in_features, *hidden_sizes]
        layers: list[nn.Module] = [nn.Flatten()]
        for width_in, width_out in itertools.pairwise(widths):
            layers += [nn.Linear(width_in, width_out), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], num_outputs))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the outputs for a batch of any shape (flattened per sample)."""
        return self.layers(x)


class ResNet8(nn.Module):
    """FedDF's CIFAR ResNet-8 on torchvision's `BasicBlock` (see the module docstring)."""

    def __init__(self, in_channels: int, num_outputs: int) -> None:
        from torchvision.models.resnet import BasicBlock, conv1x1  # noqa: PLC0415 (torchvision only for ResNets)

        super().__init__()

        def stage(planes_in: int, planes: int, stride: int) -> nn.Module:
            shortcut = None
            if stride != 1 or planes_in != planes:
                shortcut = nn.Sequential(conv1x1(planes_in, planes, stride), nn.BatchNorm2d(planes))
            return BasicBlock(planes_in, planes, stride=stride, downsample=shortcut)

        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 16, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU()
        )
        self.stages = nn.Sequential(stage(16, 16, 1), stage(16, 32, 2), stage(32, 64, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(64, num_outputs)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the outputs for images (N, C, H, W)."""
        return self.classifier(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


def resnet18(in_channels: int, num_outputs: int) -> nn.Module:
    """torchvision's ResNet-18 with a 3x3 stride-1 first convolution and no max pooling (small images)."""
    from torchvision.models import resnet18 as torchvision_resnet18  # noqa: PLC0415 (torchvision only for ResNets)

    model = torchvision_resnet18(num_classes=num_outputs)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.maxpool = nn.Identity()
    return model


def load_factory(name: str) -> Callable[[tuple[int, ...], int], nn.Module]:
    """Import the user's model factory `package.module:factory`.

    Raises
    ------
    ModelError
        If the module cannot be imported or has no such callable.
    """
    module_name, _, attribute_path = name.partition(":")
    try:
        target: object = importlib.import_module(module_name)
        for attribute in attribute_path.split("."):
            target = getattr(target, attribute)
    except Exception as error:  # noqa: BLE001 (any failure to import user code is reported in one line)
        reason = str(error).splitlines()[0] if str(error) else ""
        raise ModelError(
            f"model {name!r} cannot be imported ({type(error).__name__}: {reason}); allowed: {FACTORY_RULE}"
        ) from None
    if not callable(target):
        raise ModelError(f"model {name!r} is not callable; allowed: {FACTORY_RULE}")
    return target  # type: ignore[return-value]


def _build(name: str, input_shape: tuple[int, ...], num_outputs: int, hidden_sizes: Sequence[int]) -> nn.Module:
    """The untrained model `name` for `input_shape` (initialised by the caller's seeded generator)."""
    in_features = math.prod(input_shape)
    if name in IMAGE_MODELS and len(input_shape) != 3:
        raise ModelError(
            f"model {name!r} takes images (C x H x W); this dataset gives {in_features} features; "
            "allowed for tables: mlp, 2nn, logreg, or your own factory"
        )
    if name in MNIST_CNNS and tuple(input_shape) != (1, 28, 28):
        described = "the FedAvg paper's MNIST CNN" if name == "cnn" else "an MNIST CNN"
        raise ModelError(
            f"model {name!r} ({described}) needs 1x28x28 inputs; this dataset gives "
            f"{'x'.join(map(str, input_shape))}; allowed: resnet8, resnet18, mlp, 2nn, logreg or your own factory"
        )
    builtins: dict[str, Callable[[], nn.Module]] = {
        "cnn": lambda: CNN(num_outputs),
        "cnn-bn": lambda: CNN(num_outputs, batch_norm=True),
        "cnn-small": lambda: SmallCNN(num_outputs),
        "cnn-small-bn": lambda: SmallCNN(num_outputs, batch_norm=True),
        "2nn": lambda: TwoNN(in_features, num_outputs),
        "logreg": lambda: LogisticRegression(in_features, num_outputs),
        "mlp": lambda: MLP(in_features, hidden_sizes, num_outputs),
        "resnet8": lambda: ResNet8(input_shape[0], num_outputs),
        "resnet18": lambda: resnet18(input_shape[0], num_outputs),
    }
    if name in builtins:
        return builtins[name]()
    if is_factory(name):
        factory = load_factory(name)
        try:
            model = factory(tuple(input_shape), num_outputs)
        except Exception as error:  # noqa: BLE001 (whatever user code raises is reported in one line)
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ModelError(
                f"model {name!r} failed to build for inputs {'x'.join(map(str, input_shape))} with {num_outputs} "
                f"outputs ({type(error).__name__}: {reason}); allowed: a factory that builds a model for this data"
            ) from None
        if not isinstance(model, nn.Module):
            raise ModelError(
                f"model {name!r} returned a {type(model).__name__}, not a torch.nn.Module; allowed: {FACTORY_RULE}"
            )
        return model
    raise ModelError(f"unknown model {name!r}; allowed: {', '.join(BUILTIN_MODELS)}, or {FACTORY_RULE}")


def build_model(
    name: str,
    input_shape: tuple[int, ...],
    num_outputs: int,
    seed: int,
    hidden_sizes: Sequence[int] = DEFAULT_HIDDEN_SIZES,
) -> nn.Module:
    """Build model `name` for inputs of `input_shape` with `num_outputs` outputs, initialized from the run `seed`.

    The same (name, shape, outputs, seed) always gives the same weights, on every node.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "model-init", name))
        return _build(name, tuple(input_shape), num_outputs, hidden_sizes)


def check_model(
    name: str, input_shape: tuple[int, ...], num_outputs: int, hidden_sizes: Sequence[int] = DEFAULT_HIDDEN_SIZES
) -> None:
    """Build model `name` and run two zero inputs through it: it must give (2, `num_outputs`) outputs.

    Raises
    ------
    ModelError
        In one line, if the model cannot be built, imported, or take the input.
    """
    model = build_model(name, input_shape, num_outputs, seed=0, hidden_sizes=hidden_sizes)
    model.eval()
    try:
        with torch.no_grad():
            outputs = model(torch.zeros(2, *input_shape))
    except Exception as error:  # noqa: BLE001 (whatever a model raises on the input is reported in one line)
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ModelError(
            f"model {name!r} cannot take inputs of shape {'x'.join(map(str, input_shape))} ({reason}); allowed: "
            "a model whose first layer fits the data"
        ) from None
    shape = tuple(outputs.shape)
    if shape != (2, num_outputs) and not (num_outputs == 1 and shape == (2,)):
        raise ModelError(
            f"model {name!r} gives outputs of shape {shape} for 2 samples; allowed: (2, {num_outputs}), "
            "one output per class (or one value for regression)"
        )


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
