"""What a federation loop may ask of a strategy beyond Flower's `Strategy` hooks.

Flower's `Strategy.start` only calls `configure_*`/`aggregate_*`. fedapp's federation
loop (`fedapp/federation.py`) also records what a strategy reports about each round,
screens replies against what they must carry, checkpoints the strategy's state
between rounds, records what the strategy promises (e.g. the terms of its privacy
guarantee) and stops the run early when the strategy must not play another round
(e.g. its privacy budget is spent). Those extension points are declared here, once, with defaults that
fit a stateless strategy whose replies return weights shaped like the global model:
our strategies subclass `FederationHooks` and override what differs, and Flower's
built-ins get an adapter (`strategies/builtin.py`).
"""

from __future__ import annotations

from typing import Any

from flwr.app import Message

from strategies.arrays import Arrays


class FederationHooks:
    """A strategy's answers to the federation loop; every method has a stateless default."""

    def has_global_model(self) -> bool:
        """False for a strategy without one (FD): its round is then scored by its client models' mean accuracy."""
        return True

    def run_summary(self) -> dict[str, Any]:
        """What the run's record says about the strategy as a whole (e.g. the terms of its privacy guarantee)."""
        return {}

    def stop_reason(self, server_round: int, num_nodes: int) -> str | None:  # noqa: ARG002 (overrides read them)
        """Why the run must end before `server_round` among `num_nodes` connected nodes, or None to play it."""
        return None

    def round_metrics(self) -> dict[str, float]:
        """Figures about the round just aggregated (stragglers, epsilon, ...) for its record."""
        return {}

    def skipped_round_metrics(self) -> dict[str, float]:
        """Figures a round that aggregated nothing still reports (e.g. the unchanged epsilon)."""
        return {}

    def reply_reference(self, message: Message) -> Arrays | None:  # noqa: ARG002 (overrides read the message)
        """What a reply to `message` must carry (keys, shapes, dtypes), or None: weights like those sent."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """What carries over between rounds, as plain data a checkpoint can hold (numbers, arrays, lists, dicts)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned into a freshly built strategy of the same kind (resuming a run)."""
