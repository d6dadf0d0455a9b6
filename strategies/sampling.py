"""Which nodes train in a round: fixed-size sampling without replacement, or Poisson sampling.

- `fixed` (Flower's rule, and fedapp's default): m = max(floor(q * N), min-train-nodes)
  of the N connected nodes, drawn without replacement. Every round has m clients.
- `poisson` (DP-FedAvg, McMahan et al. 2018): each node takes part independently with
  probability q, so a round has Binomial(N, q) clients, possibly none. Under DP the
  average divides by the expected number q * N, not by the number that took part.

The privacy accountant follows the sampling (`accounting.py`): without replacement
the neighbouring relation is replace-one, with Poisson sampling it is add/remove-one.

Where the draws come from is the app's choice, passed in as `rng(server_round)`:
`seeded_sampling(seed)` reproduces a run's samples from its seed (and draws exactly
what `random.seed(...); random.sample(...)` drew before this module existed, so old
runs sample the same nodes); `secret_sampling()` draws from the operating system's
entropy, which privacy amplification by sampling needs in a real deployment (nobody
may learn who was sampled from the run config).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from strategies.seeding import derive_seed

FIXED = "fixed"
POISSON = "poisson"
SAMPLING_METHODS = (FIXED, POISSON)

SamplingRng = Callable[[int], random.Random]
"""The random source of one round's draw, given the round number."""


def seeded_sampling(seed: int) -> SamplingRng:
    """Draws derived from the run `seed` and the round: reproducible, so not secret."""
    return lambda server_round: random.Random(derive_seed(seed, "sample", "train", server_round))  # noqa: S311 (reproducible on purpose)


def secret_sampling() -> SamplingRng:
    """Draws from the operating system's entropy (`os.urandom`), made when the round samples."""
    return lambda _server_round: random.SystemRandom()


@dataclass(frozen=True)
class ClientSampler:
    """Draws a round's clients from the connected nodes by `method` with rate `fraction` (q)."""

    method: str
    fraction: float
    min_nodes: int
    rng: SamplingRng

    def __post_init__(self) -> None:
        if self.method not in SAMPLING_METHODS:
            raise ValueError(f"unknown client sampling {self.method!r}; allowed: {', '.join(SAMPLING_METHODS)}")
        if not 0 < self.fraction <= 1:
            raise ValueError(f"sampling fraction {self.fraction} is not in (0, 1]")

    def sample_size(self, population: int) -> int:
        """Fixed sampling's m for `population` connected nodes (Flower's FedAvg rule)."""
        return min(population, max(int(population * self.fraction), self.min_nodes))

    def expected_clients(self, population: int) -> float:
        """The expected number of clients per round: m (fixed) or q * N (Poisson)."""
        if self.method == FIXED:
            return float(self.sample_size(population))
        return self.fraction * population

    def sample(self, node_ids: Sequence[int], server_round: int) -> list[int]:
        """The clients of `server_round` among `node_ids` (in a stable order)."""
        rng = self.rng(server_round)
        if self.method == FIXED:
            return rng.sample(list(node_ids), self.sample_size(len(node_ids)))
        return [node_id for node_id in node_ids if rng.random() < self.fraction]
