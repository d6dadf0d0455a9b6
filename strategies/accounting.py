"""Privacy accounting for DP-FedAvg with the RDP (moments) accountant of Google's dp-accounting.

fedapp samples a fixed number m of the N connected nodes per round without
replacement, so the neighbouring relation is "replace one client's data" (N public).
Replacing one client changes the sum of clipped updates by at most 2C, and the noise
on that sum has std z * C, so the accountant sees a noise multiplier of z / 2 per round:
a subsampled Gaussian (Wang, Balle, Kasiviswanathan 2019) when m < N, a plain Gaussian
when every node takes part. Rounds compose; epsilon is reported for the run's delta.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dp_accounting
from dp_accounting.rdp import RdpAccountant

REPLACE_ONE_SENSITIVITY = 2.0


@dataclass(frozen=True)
class RoundEvent:
    """One round's privacy event: m of N clients, noise multiplier z (relative to C)."""

    num_sampled: int
    population: int
    noise_multiplier: float


def round_dp_event(event: RoundEvent) -> dp_accounting.DpEvent:
    """The dp-accounting event of one DP-FedAvg round."""
    gaussian = dp_accounting.GaussianDpEvent(event.noise_multiplier / REPLACE_ONE_SENSITIVITY)
    if event.num_sampled >= event.population:
        return gaussian
    return dp_accounting.SampledWithoutReplacementDpEvent(event.population, event.num_sampled, gaussian)


def epsilon(events: list[RoundEvent], delta: float) -> float:
    """The (epsilon, delta)-DP epsilon of having run `events` in sequence (inf without noise)."""
    if any(event.noise_multiplier <= 0 for event in events):
        return float("inf")
    accountant = RdpAccountant(neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_ONE)
    for event in events:
        accountant.compose(round_dp_event(event))
    return float(accountant.get_epsilon(delta))


@dataclass
class PrivacyLedger:
    """The rounds run so far under DP, and the cumulative epsilon they cost."""

    delta: float
    events: list[RoundEvent] = field(default_factory=list)

    def record(self, event: RoundEvent) -> float:
        """Add one round and return the cumulative epsilon."""
        self.events.append(event)
        return self.spent()

    def spent(self) -> float:
        """The cumulative epsilon of the rounds recorded so far (0 before the first)."""
        return epsilon(self.events, self.delta)

    def state_dict(self) -> dict[str, list[list[float]]]:
        """The rounds recorded so far, as [num_sampled, population, noise_multiplier] rows."""
        return {"events": [[e.num_sampled, e.population, e.noise_multiplier] for e in self.events]}

    def load_state_dict(self, state: dict[str, list[list[float]]]) -> None:
        """Restore the rounds saved by `state_dict`."""
        self.events = [RoundEvent(int(m), int(n), float(z)) for m, n, z in state["events"]]
