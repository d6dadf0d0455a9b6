"""Names that run-config keys accept and more than one module needs: tasks, models, augmentations.

Pure data (no torch import), so config validation on both sides stays light; the
modules that give the names their meaning (`tasks.py`, `models.py`, `data/images.py`)
import them from here.
"""

from __future__ import annotations

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = (CLASSIFICATION, REGRESSION)

MNIST_CNNS = ("cnn", "cnn-bn", "cnn-small", "cnn-small-bn")
BUILTIN_MODELS = (*MNIST_CNNS, "2nn", "logreg", "mlp", "resnet8", "resnet18")
IMAGE_MODELS = (*MNIST_CNNS, "resnet8", "resnet18")
BATCH_NORM_MODELS = ("cnn-bn", "cnn-small-bn", "resnet8", "resnet18")  # FedBN keeps their BatchNorm layers local
FACTORY_RULE = "'package.module:factory' importable where the server and clients run (e.g. a module in usermodels/)"

AUGMENTATIONS = ("none", "standard")


def is_factory(name: str) -> bool:
    """True for a `package.module:factory` reference (a user's model)."""
    module, sep, attribute = name.partition(":")
    parts = [*module.split("."), *attribute.split(".")]
    return bool(sep) and all(part.isidentifier() for part in parts)
