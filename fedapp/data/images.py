"""Images with torchvision: decoding to uint8 arrays, resizing, normalisation and augmentation.

- `to_uint8`: PIL images (any size, any mode) to one (N, C, H, W) uint8 array.
  Grayscale images ("L", "1", "I;16", ...) stay one channel; a dataset with any colour
  image becomes RGB (3 channels, alpha dropped). `image-size` resizes every image to
  a square of that side (bilinear, antialiased); without it, mixed sizes are an error.
- `channel_statistics`: per-channel mean and standard deviation of the training
  pool (values scaled to [0, 1]), which `normalize` uses for every split and node.
- `normalize`: uint8 to float, scaled to [0, 1] by dividing by 255 (not
  `ToDtype(scale=True)`, which multiplies by 1/255 and differs in the last bit from
  the pipeline fedapp's MNIST results were measured with), then (x - mean) / std per
  channel: torchvision's `Normalize`, written as its two tensor operations because
  importing torchvision costs seconds per process (it loads `torch._dynamo`), which
  every ClientApp process of a deployment would pay (a unit test holds the two equal).

torchvision is imported only where it does the work (decoding and resizing a dataset
on a cache miss, augmentation, image folders, ResNets).
- `Augmentation`: `augment = "standard"`: random crop with padding (1/8 of the side,
  4 pixels at 32x32) and horizontal flip, per sample, on training batches only, as in
  FedDF's CIFAR pipeline. Deliberate difference: the crop pads the normalised image
  with zeros, i.e. with the channel mean, where FedDF pads black before normalising.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from fedapp.data.spec import DataError

GRAYSCALE_MODES = ("1", "L", "LA", "I", "I;16", "F")


def to_uint8(images: Iterable[Any], image_size: int, name: str) -> np.ndarray:
    """Stack PIL images as uint8 (N, C, H, W), resized to `image_size` if > 0.

    Images are converted one at a time (a large dataset is never held as PIL objects):
    grayscale-like modes to one channel, others to RGB; if both occur, the grayscale
    ones are repeated over three channels at the end, as PIL's RGB conversion does.

    Raises
    ------
    DataError
        If there are no images, or they have different sizes and `image_size` is 0.
    """
    from torchvision.transforms.v2 import functional as F  # noqa: PLC0415 (slow import: only to decode)

    arrays: list[np.ndarray] = []
    for picture in images:
        tensor = F.pil_to_tensor(picture.convert("L" if picture.mode in GRAYSCALE_MODES else "RGB"))
        if image_size > 0:
            tensor = F.resize(tensor, [image_size, image_size], antialias=True)
        elif arrays and tensor.shape[1:] != arrays[0].shape[1:]:
            (h1, w1), (h2, w2) = arrays[0].shape[1:], tensor.shape[1:]
            raise DataError(
                f"dataset {name!r} has images of different sizes ({h1}x{w1} and {h2}x{w2}); set image-size to "
                "resize them all to one square size (allowed: an integer >= 1)"
            )
        arrays.append(tensor.numpy())
    if not arrays:
        raise DataError(f"dataset {name!r} holds no images")
    channels = max(array.shape[0] for array in arrays)
    return np.stack([np.repeat(array, channels // array.shape[0], axis=0) for array in arrays])


def channel_statistics(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (mean, standard deviation) of uint8 images (N, C, H, W) scaled to [0, 1]."""
    scaled = images.astype(np.float64) / 255.0
    mean = scaled.mean(axis=(0, 2, 3))
    std = scaled.std(axis=(0, 2, 3))
    return mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32)


def normalize(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    """uint8 images (N, C, H, W) to float32, scaled to [0, 1] and normalised per channel.

    The result has PyTorch's standard strides: a one-channel array sliced from NumPy can
    carry a stride on its channel axis that makes PyTorch see it as channels-last, and
    convolutions then take another code path (same values, other rounding).
    """
    scaled = torch.empty(images.shape, dtype=torch.float32).copy_(torch.from_numpy(images)).div_(255.0)
    return scaled.sub_(torch.from_numpy(mean).view(-1, 1, 1)).div_(torch.from_numpy(std).view(-1, 1, 1))


class Augmentation:
    """`augment = "standard"`: random crop with padding and horizontal flip, one draw per sample."""

    def __init__(self, input_shape: tuple[int, ...]) -> None:
        from torchvision.transforms import v2  # noqa: PLC0415 (slow import: only when augmenting)

        _, height, width = input_shape
        self.transform = v2.Compose(
            [v2.RandomCrop((height, width), padding=max(1, height // 8)), v2.RandomHorizontalFlip()]
        )

    def __call__(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment each image of `batch` (N, C, H, W) with draws seeded from `generator`.

        torchvision's transforms draw from torch's global generator, so it is forked and
        seeded from `generator`: the same node, round and seed augment alike, and the
        process's global stream is left as it was.
        """
        seed = int(torch.randint(2**62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return torch.stack([self.transform(image) for image in batch])


def augmentation(kind: str, input_shape: tuple[int, ...]) -> Augmentation | None:
    """The training-batch augmentation `augment` names (None for "none")."""
    if kind == "none":
        return None
    if kind == "standard" and len(input_shape) == 3:
        return Augmentation(input_shape)
    raise DataError(
        f"run-config key 'augment' = {kind!r} is not allowed for {len(input_shape)}-dimensional inputs; "
        "allowed: 'none', or 'standard' with image data"
    )
