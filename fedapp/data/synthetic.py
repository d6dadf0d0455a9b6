"""Synthetic(alpha, beta): the FedProx paper's heterogeneous federated data, in pure NumPy.

Li et al. 2020, "Federated Optimization in Heterogeneous Networks" (arXiv:1812.06127),
section 5.1, following Shamir et al. 2014; generated as in the paper's published
script (`data/synthetic_1_1/generate_synthetic.py`):

- 30 devices with power-law sizes, n_k = floor(lognormal(4, 2)) + 50;
- device k draws u_k ~ N(0, alpha) and B_k ~ N(0, beta), its model
  W_k ~ N(u_k, 1) (60 x 10) and b_k ~ N(u_k, 1), and its feature mean
  v_k ~ N(B_k, 1) (60-dimensional);
- its samples are x ~ N(v_k, Sigma) with Sigma diagonal, Sigma_jj = j^-1.2, labelled
  y = argmax(x W_k + b_k) over 10 classes;
- each device keeps 90% of its samples for training and holds out 10% for testing.

beta moves the devices' feature distributions apart; alpha moves their models apart.
As in the reference script, u_k shifts every class's logit by the same amount, so
alpha changes the models' parameters but not the labels they assign: label
heterogeneity comes from each device drawing its own W_k and from beta.

Deliberate difference: every draw comes from generators derived from the run seed
(and alpha, beta), not NumPy's global state, so the same settings give the same data
in every process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from strategies.seeding import numpy_rng

NAME = "synthetic"
NUM_DEVICES = 30
NUM_FEATURES = 60
NUM_CLASSES = 10
TEST_SHARE = 0.1


@dataclass(frozen=True)
class SyntheticSpec:
    """Which Synthetic(alpha, beta) data set: its two parameters and the seed it is drawn from."""

    alpha: float
    beta: float
    seed: int


@dataclass(frozen=True)
class Device:
    """One device's samples and the model that labelled them."""

    features: np.ndarray
    labels: np.ndarray
    weights: np.ndarray
    bias: np.ndarray


@dataclass(frozen=True)
class SyntheticData:
    """All devices' data split into a training pool and a held-out test set.

    `pool_devices[i]` is the device that pool sample i belongs to (natural partitioning).
    """

    pool_features: np.ndarray
    pool_labels: np.ndarray
    pool_devices: np.ndarray
    test_features: np.ndarray
    test_labels: np.ndarray


def _rng(spec: SyntheticSpec, *labels: int | str) -> np.random.Generator:
    """The generator for one kind of draw (`labels`) of the data set `spec`."""
    return numpy_rng(spec.seed, NAME, repr(float(spec.alpha)), repr(float(spec.beta)), *labels)


def device_sizes(num_devices: int, rng: np.random.Generator) -> np.ndarray:
    """Power-law device sizes: floor(lognormal(mean 4, sigma 2)) + 50, as in the paper's script."""
    return rng.lognormal(4, 2, num_devices).astype(np.int64) + 50


def generate_devices(spec: SyntheticSpec, num_devices: int = NUM_DEVICES) -> list[Device]:
    """Draw every device's model and samples of Synthetic(`spec.alpha`, `spec.beta`)."""
    if spec.alpha < 0 or spec.beta < 0:
        raise ValueError(f"Synthetic(alpha, beta) needs alpha, beta >= 0; got ({spec.alpha}, {spec.beta})")
    priors = _rng(spec, "priors")
    sizes = device_sizes(num_devices, priors)
    model_means = priors.normal(0, spec.alpha, num_devices)
    feature_shifts = priors.normal(0, spec.beta, num_devices)
    feature_std = np.arange(1, NUM_FEATURES + 1, dtype=np.float64) ** -0.6
    devices = []
    for k in range(num_devices):
        rng = _rng(spec, "device", k)
        weights = rng.normal(model_means[k], 1, (NUM_FEATURES, NUM_CLASSES))
        bias = rng.normal(model_means[k], 1, NUM_CLASSES)
        feature_mean = rng.normal(feature_shifts[k], 1, NUM_FEATURES)
        features = feature_mean + feature_std * rng.standard_normal((sizes[k], NUM_FEATURES))
        labels = np.argmax(features @ weights + bias, axis=1)
        devices.append(Device(features.astype(np.float32), labels.astype(np.int64), weights, bias))
    return devices


def generate(spec: SyntheticSpec, num_devices: int = NUM_DEVICES) -> SyntheticData:
    """Generate the data set: each device's training share pooled (shuffled), its test share held out.

    The pool is shuffled with the seed so that a public slice carved from its front
    draws from every device rather than emptying the first one.
    """
    train_parts, test_parts = [], []
    for k, device in enumerate(generate_devices(spec, num_devices)):
        order = _rng(spec, "holdout", k).permutation(len(device.labels))
        num_train = int((1 - TEST_SHARE) * len(order))
        train_parts.append((device.features[order[:num_train]], device.labels[order[:num_train]], k))
        test_parts.append((device.features[order[num_train:]], device.labels[order[num_train:]]))
    pool_features = np.concatenate([features for features, _, _ in train_parts])
    pool_labels = np.concatenate([labels for _, labels, _ in train_parts])
    pool_devices = np.concatenate([np.full(len(labels), k, dtype=np.int64) for _, labels, k in train_parts])
    shuffle = _rng(spec, "pool-order").permutation(len(pool_labels))
    return SyntheticData(
        pool_features=pool_features[shuffle],
        pool_labels=pool_labels[shuffle],
        pool_devices=pool_devices[shuffle],
        test_features=np.concatenate([features for features, _ in test_parts]),
        test_labels=np.concatenate([labels for _, labels in test_parts]),
    )
