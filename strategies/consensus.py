"""FedMD's consensus (Li & Wang 2019, code `diogenes0319/FedMD_clean`) as plain functions.

Each round every party scores an alignment subset of the public set; the consensus is
the uniform mean of the parties' logits (`logits += ...; logits /= N_parties`, no
weighting, no temperature). The subset is drawn afresh every round (the authors draw
5,000 of MNIST's 60,000 with a `StratifiedShuffleSplit`); here it is a seeded uniform
draw from the public slice, which both the server and the clients can recompute from
(seed, round), so no indices travel.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from strategies.seeding import numpy_rng


def uniform_consensus(logits: Sequence[np.ndarray]) -> np.ndarray:
    """The parties' logits averaged with equal weights (samples x classes, float32)."""
    if not logits:
        raise ValueError("uniform_consensus needs at least one party's logits")
    return np.mean(np.stack([np.asarray(x, dtype=np.float64) for x in logits]), axis=0).astype(np.float32)


def alignment_subset(public_size: int, samples: int, seed: int, server_round: int) -> np.ndarray:
    """Positions in the public set scored in `server_round`: `samples` of them drawn afresh, or all (0).

    Sorted, so the consensus rows follow the public set's order.
    """
    if samples <= 0 or samples >= public_size:
        return np.arange(public_size)
    rng = numpy_rng(seed, "alignment-subset", server_round)
    return np.sort(rng.choice(public_size, size=samples, replace=False))


def consensus_accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Share of samples whose consensus logits peak at their (hidden) label."""
    return float(np.mean(np.asarray(logits).argmax(axis=1) == np.asarray(labels)))


def consensus_confidence(logits: np.ndarray) -> float:
    """Mean over samples of the consensus's top softmax probability (how sure the teacher is)."""
    shifted = np.asarray(logits, dtype=np.float64) - np.max(logits, axis=1, keepdims=True)
    probabilities = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    return float(probabilities.max(axis=1).mean())
