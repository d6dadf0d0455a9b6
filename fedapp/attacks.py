"""Attacks, for robustness experiments: chosen nodes send poisoned replies from the ClientApp itself.

`-c attack=sign-flip attackers=0.2` makes a fifth of the nodes attack; `attackers` may
instead name nodes by key (`'partition-00001,partition-00004'`). The attacks run on the
nodes (the ClientApp), so simulation and deployment exercise the same code; what the
server does about them (screening, robust aggregation) is what an experiment measures.

- `sign-flip`: the update is reversed and multiplied by k (`attack-scale`, default 1):
  sent - k (trained - sent).
- `scale`: the update is multiplied by k (default 5, below the default 10 x median norm
  screen): sent + k (trained - sent) (boosting, Bhagoji et al. 2019).
- `gaussian`: the update is replaced by N(0, sigma^2) noise, sigma = k x the honest
  update's root mean square (default 1: the noise has about the honest norm, so a norm
  screen cannot tell it apart); seeded from the run seed, round and node.
- `label-flip`: the node trains honestly on labels y -> C - 1 - y (Fang et al. 2020,
  Tolpegin et al. 2020); classification only.
- `num-examples`: the node claims k x the examples it trained on (default 10, as much as
  the default `max-claim-ratio` lets through), to take a larger weight in averaging.
- `alie` ("A little is enough", Baruch et al. 2019): each coordinate is set to
  mean - z std of the benign updates (z = k, default 1), a small, coordinated shift
  that stays inside the spread which robust aggregators (median, Krum, trimmed mean)
  accept. The paper's colluding attackers see the benign updates; a node in a real
  deployment cannot, so it estimates the mean and standard deviation from its own data:
  it trains `ALIE_SHARDS` copies of the received model on disjoint shards of its training
  split (each for `ALIE_SHARDS` times the local epochs, so as many steps as an honest
  round) and takes their per-coordinate mean and standard deviation. The spread between
  shards of one node is smaller than between nodes under non-IID data, so the estimate
  errs on the stealthy side. The paper's z_max = Phi^-1((n - s) / n), s = floor(n / 2 + 1) - m
  for n nodes and m attackers, is a good `attack-scale`; we default to 1 because a node
  with its own data knows neither n nor m.

Which nodes attack is decided by each node itself from the run config: a node-key list
names them; a fraction picks round(fraction x num-partitions) partition ids with a
permutation seeded by the run seed, so the same seed gives the same attackers in
simulation and in a deployment of partition nodes. A node with its own data (no
partition id) must be named by key. The ServerApp warns at start and records the plan in
`metrics.json` (`announce_attack`); the functions on arrays are pure: only floating-point
arrays are attacked (integer counters keep the honest reply's value).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache
from logging import WARNING
from typing import Any

import numpy as np
from flwr.common import log

from fedapp.choices import (
    ALIE,
    AUTO_ATTACK_SCALE,
    GAUSSIAN,
    LABEL_FLIP,
    NO_ATTACK,
    NUM_EXAMPLES,
    SCALE,
    SIGN_FLIP,
    parse_attackers,
)
from fedapp.config import ConfigError, RunConfig
from strategies.aggregation import is_parameter
from strategies.arrays import Arrays
from strategies.seeding import numpy_rng

__all__ = [
    "ALIE",
    "ALIE_SHARDS",
    "GAUSSIAN",
    "LABEL_FLIP",
    "NO_ATTACK",
    "NUM_EXAMPLES",
    "SCALE",
    "SIGN_FLIP",
    "alie_update",
    "announce_attack",
    "attack_rng",
    "attack_scale",
    "attacker_partitions",
    "flipped_labels",
    "gaussian_update",
    "inflated_claim",
    "is_attacker",
    "poisoned_update",
    "scale_update",
    "shard_indices",
    "sign_flip",
]

UPDATE_ATTACKS = (SIGN_FLIP, SCALE, GAUSSIAN)
DEFAULT_SCALES = {SIGN_FLIP: 1.0, SCALE: 5.0, GAUSSIAN: 1.0, NUM_EXAMPLES: 10.0, ALIE: 1.0}
ALIE_SHARDS = 4


@lru_cache(maxsize=16)
def attacker_partitions(fraction: float, num_partitions: int, seed: int) -> frozenset[int]:
    """The round(fraction x num_partitions) partition ids (ties up) that attack, drawn from the run seed."""
    count = math.floor(fraction * num_partitions + 0.5)
    order = numpy_rng(seed, "attackers", num_partitions).permutation(num_partitions)
    return frozenset(int(partition) for partition in order[:count])


def is_attacker(attackers: str, seed: int, key: str, partition_id: int, num_partitions: int) -> bool:
    """Whether the node with `key` (holding `partition_id` of `num_partitions`; 0: its own data) attacks.

    Raises
    ------
    ConfigError
        For a fraction on a node with its own data: it has no partition id to draw by.
    """
    chosen = parse_attackers(attackers)
    if isinstance(chosen, tuple):
        return key in chosen
    if num_partitions == 0:
        raise ConfigError(
            f"run-config key 'attackers' = {attackers!r} is a fraction of the partitions, but node {key!r} "
            "trains on its own data (data-path); allowed with such nodes: attacker node keys, e.g. 'edge-1,edge-3'"
        )
    return partition_id in attacker_partitions(chosen, num_partitions, seed)


def attack_scale(attack: str, scale: float) -> float:
    """`attack-scale` with auto (-1) resolved to the attack's default."""
    return DEFAULT_SCALES.get(attack, 1.0) if scale == AUTO_ATTACK_SCALE else scale


def _update(honest: Arrays, sent: Arrays, make: Callable[[str, np.ndarray], np.ndarray]) -> Arrays:
    """`honest` with each floating-point array replaced by `make(name, honest update)` added to `sent`."""
    return {
        name: (sent[name] + make(name, value - sent[name])).astype(value.dtype) if is_parameter(value) else value
        for name, value in honest.items()
    }


def sign_flip(honest: Arrays, sent: Arrays, k: float) -> Arrays:
    """sent - k x (honest - sent): the update reversed and scaled."""
    return _update(honest, sent, lambda _, update: -k * update)


def scale_update(honest: Arrays, sent: Arrays, k: float) -> Arrays:
    """sent + k x (honest - sent): the update scaled (boosted)."""
    return _update(honest, sent, lambda _, update: k * update)


def gaussian_update(honest: Arrays, sent: Arrays, k: float, rng: np.random.Generator) -> Arrays:
    """sent + N(0, sigma^2) per coordinate, sigma = k x the root mean square of the honest update."""
    updates = {name: value - sent[name] for name, value in honest.items() if is_parameter(value)}
    size = sum(update.size for update in updates.values())
    energy = sum(float(np.sum(np.square(update, dtype=np.float64))) for update in updates.values())
    sigma = k * math.sqrt(energy / max(size, 1))
    return _update(honest, sent, lambda _, update: rng.normal(0.0, sigma, update.shape))


def alie_update(honest: Arrays, sent: Arrays, shard_models: Sequence[Arrays], z: float) -> Arrays:
    """sent + mean - z x std (per coordinate) of the shard models' updates (Baruch et al. 2019's ALIE).

    The standard deviation is the sample one (ddof 1): the shards stand for benign nodes.
    """
    if len(shard_models) < 2:
        raise ValueError(f"ALIE needs at least 2 shard models to estimate a spread, got {len(shard_models)}")

    def shifted(name: str, _: np.ndarray) -> np.ndarray:
        updates = np.stack([model[name].astype(np.float64) - sent[name] for model in shard_models])
        return updates.mean(axis=0) - z * updates.std(axis=0, ddof=1)

    return _update(honest, sent, shifted)


def poisoned_update(attack: str, honest: Arrays, sent: Arrays, k: float, rng: np.random.Generator) -> Arrays:
    """The reply of `attack` (one of `UPDATE_ATTACKS`) given the honest reply and the weights sent."""
    if attack == SIGN_FLIP:
        return sign_flip(honest, sent, k)
    if attack == SCALE:
        return scale_update(honest, sent, k)
    if attack == GAUSSIAN:
        return gaussian_update(honest, sent, k, rng)
    raise ValueError(f"attack {attack!r} does not change the update alone; allowed: {', '.join(UPDATE_ATTACKS)}")


def inflated_claim(examples: int, k: float) -> int:
    """k x the examples trained on, as a whole number >= 1 (the claim the server's screen accepts as such)."""
    return max(1, round(k * examples))


def flipped_labels(labels: Any, num_classes: int) -> Any:
    """Labels y -> C - 1 - y (a NumPy array or a torch tensor of class ids)."""
    return num_classes - 1 - labels


def shard_indices(size: int, shards: int, seed: int, server_round: int, key: str) -> list[np.ndarray]:
    """`size` sample indices cut into `shards` disjoint random shards, drawn anew each round."""
    order = numpy_rng(seed, "alie-shards", server_round, key).permutation(size)
    return np.array_split(order, shards)


def attack_rng(seed: int, server_round: int, key: str) -> np.random.Generator:
    """The random stream of node `key`'s attack in `server_round` (an experiment repeats with its seed)."""
    return numpy_rng(seed, "attack", server_round, key)


def announce_attack(config: RunConfig, num_partitions: Sequence[int], own_data_nodes: int) -> dict[str, Any]:
    """Warn that this run attacks and return its plan for `metrics.json` ({} without an attack).

    Called by the ServerApp once it knows its nodes: the attackers of a fraction are the
    partitions' default keys (`partition-00042`).

    Raises
    ------
    ConfigError
        For a fraction when some node has its own data or the nodes disagree on num-partitions.
    """
    if config.attack == NO_ATTACK:
        return {}
    chosen = parse_attackers(config.attackers)
    if isinstance(chosen, tuple):
        keys, how = list(chosen), "named by key"
    else:
        if own_data_nodes or len(num_partitions) != 1:
            raise ConfigError(
                f"run-config key 'attackers' = {config.attackers!r} is a fraction of the partitions, but "
                f"{own_data_nodes} node(s) have their own data and the nodes' num-partitions are "
                f"{list(num_partitions)}; allowed here: attacker node keys, e.g. 'edge-1,edge-3'"
            )
        partitions = sorted(attacker_partitions(chosen, num_partitions[0], config.seed))
        keys = [f"partition-{partition:05d}" for partition in partitions]
        how = f"fraction {chosen:g} of {num_partitions[0]} partitions, seed {config.seed}"
    scale = attack_scale(config.attack, config.attack_scale)
    log(
        WARNING,
        "[fedapp] ATTACK EXPERIMENT: %d node(s) run attack %s (attack-scale %g, %s): %s",
        len(keys),
        config.attack,
        scale,
        how,
        ", ".join(keys) or "none",
    )
    return {"attack": {"attack": config.attack, "attack_scale": scale, "attackers": keys, "chosen": how}}
