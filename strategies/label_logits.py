"""FD's per-label logits (Jeong et al. 2018, arXiv:1811.11479, Algorithm 1) as plain functions.

A device averages, per label, the logit vectors its model produced for the training
samples of that label during the round (Fbar_l, a labels x classes table). The server
sums the tables of the devices and gives each device a teacher that leaves out its
own contribution: Fhat_l^(i) = (sum_j Fbar_l^(j) - Fbar_l^(i)) / (M - 1).

Under a Dirichlet label split most devices never see most labels, so a device's
table has rows with no samples (0/0), which the paper does not address. Here a row
counts only for the devices that hold the label (the flags devices send with their
tables, `presence` 1): the teacher of label
l for device i is the mean over the *other* holders of l, and a label no other device
holds has no teacher (its regulariser is dropped). With every device holding every
label this is exactly the paper's formula.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def label_means(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per-label average logits Fbar_l = sums_l / counts_l (labels x classes); rows of unseen labels are 0."""
    counts = np.asarray(counts, dtype=np.float64)
    means = np.zeros(sums.shape, dtype=np.float64)
    seen = counts > 0
    means[seen] = sums[seen] / counts[seen, None]
    return means.astype(np.float32)


def label_teacher(
    means: Sequence[np.ndarray], presence: Sequence[np.ndarray], own: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Device `own`'s teacher from the devices' tables, leaving its own table out.

    Parameters
    ----------
    means
        Each device's per-label average logits, labels x classes.
    presence
        Per device, which labels it holds (> 0) or not (0); a label not held has no row to average.
    own
        The index in `means` of the device the teacher is for, or None for a device
        that did not contribute (its teacher is the mean over every holder).

    Returns
    -------
    teacher, has_teacher
        The mean of the other holders' rows per label (labels x classes, float32; 0
        where no other device holds the label), and which labels have a teacher.
    """
    stacked = np.stack([np.asarray(m, dtype=np.float64) for m in means])
    holders = np.stack([np.asarray(p) > 0 for p in presence]).astype(np.float64)
    if own is not None:
        holders[own] = 0.0
    number = holders.sum(axis=0)
    total = np.einsum("dl,dlc->lc", holders, stacked)
    has_teacher = number > 0
    teacher = np.zeros(total.shape, dtype=np.float64)
    teacher[has_teacher] = total[has_teacher] / number[has_teacher, None]
    return teacher.astype(np.float32), has_teacher


def label_consensus_accuracy(means: Sequence[np.ndarray], presence: Sequence[np.ndarray]) -> float | None:
    """Share of the labels some device holds whose averaged logits (over every holder) peak at that label.

    FD's analogue of a consensus's accuracy: a label whose global average logit vector
    points elsewhere teaches every device a wrong target. None when no device holds any label.
    """
    teacher, has_teacher = label_teacher(means, presence, own=None)
    labels = np.flatnonzero(has_teacher)
    if len(labels) == 0:
        return None
    return float(np.mean(teacher[labels].argmax(axis=1) == labels))
