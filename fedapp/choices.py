"""Names that run-config keys accept and more than one module needs: tasks, models, augmentations, attacks.

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

NO_ATTACK = "none"
SIGN_FLIP = "sign-flip"
SCALE = "scale"
GAUSSIAN = "gaussian"
LABEL_FLIP = "label-flip"
NUM_EXAMPLES = "num-examples"
ALIE = "alie"
ATTACKS = (NO_ATTACK, SIGN_FLIP, SCALE, GAUSSIAN, LABEL_FLIP, NUM_EXAMPLES, ALIE)  # fedapp/attacks.py
AUTO_ATTACK_SCALE = -1.0  # `attack-scale`: the attack's default
# The strategies whose nodes answer the plain `train` message with trained weights,
# where the attack hooks in (SCAFFOLD, FedBN, Ditto, FedSGD and the logit exchanges are not covered yet).
ATTACKABLE_STRATEGIES = (
    "fedavg",
    "fedprox",
    "fednova",
    "feddf",
    "fedadam",
    "fedyogi",
    "fedadagrad",
    "fedmedian",
    "fedtrimmedavg",
    "krum",
)
ATTACKERS_RULE = (
    "'' (no attackers), a fraction in [0, 1) of the partitions, or distinct node keys separated by commas, "
    "e.g. 'partition-00001,partition-00004'"
)


def is_factory(name: str) -> bool:
    """True for a `package.module:factory` reference (a user's model)."""
    module, sep, attribute = name.partition(":")
    parts = [*module.split("."), *attribute.split(".")]
    return bool(sep) and all(part.isidentifier() for part in parts)


def parse_attackers(text: str) -> float | tuple[str, ...]:
    """`attackers` as a fraction of the partitions or a tuple of node keys ('' = no keys).

    Raises
    ------
    ValueError
        On a fraction outside [0, 1), an empty entry or a key named twice.
    """
    text = text.strip()
    try:
        fraction = float(text)
    except ValueError:
        keys = tuple(key.strip() for key in text.split(",")) if text else ()
        if any(not key for key in keys) or len(set(keys)) != len(keys):
            raise ValueError(f"bad attackers {text!r}") from None
        return keys
    if not 0 <= fraction < 1:
        raise ValueError(f"attackers fraction {fraction} outside [0, 1)")
    return fraction
