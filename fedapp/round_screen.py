"""Screens a round's training replies against each other: sane claims, bounded weights, no norm outliers.

The math is in `strategies.round_screening`; this module applies it to Flower
messages. A training reply must claim a whole number of examples >= 1 (else it is
rejected, like a NaN update); among the replies that pass every check, an update
whose norm is far above the round's median is rejected, and each claim is capped at a
multiple of the round's median claim (written back into the reply, so every strategy,
ours or Flower's, weighs the reply by the capped figure).

Under DP neither round-relative screen runs: clipping already bounds what one reply
can do, and whether a reply is kept must not depend on other clients' updates, or the
accounted sensitivity would no longer hold. Claims do not weigh under DP (uniform).
"""

from __future__ import annotations

from collections.abc import Callable

from flwr.app import Message, MessageType

from strategies.aggregation import difference, global_norm
from strategies.arrays import Arrays, to_numpy
from strategies.protocol import ARRAYS, METRICS, NUM_EXAMPLES, TRAIN_GRADIENT
from strategies.round_screening import capped_claims, claim_problem, norm_outliers
from strategies.validation import Rejection


def claim_of(reply: Message) -> object:
    """The `num-examples` a reply claims (None when it claims none)."""
    if METRICS not in reply.content.metric_records:
        return None
    return reply.content[METRICS].get(NUM_EXAMPLES)


def training_claim_problem(reply: Message, sent: Message) -> Rejection | None:
    """Why a training reply's claimed examples are unacceptable; None for other replies or a sane claim."""
    if sent.metadata.message_type.partition(".")[0] != MessageType.TRAIN:
        return None
    return claim_problem(claim_of(reply))


def returns_trained_weights(message_type: str) -> bool:
    """True for messages answered with locally trained weights: `train` and its variants but gradient requests."""
    return message_type.partition(".")[0] == MessageType.TRAIN and message_type != TRAIN_GRADIENT


def outlier_rejections(
    answered: list[tuple[Message, Message]], sent_arrays: Callable[[Message], Arrays], ratio: float
) -> list[Rejection | None]:
    """Per (sent, reply) pair, a rejection when its update's norm is an outlier in the round.

    Only replies of trained weights are compared (gradients and soft labels have no
    update to measure); `sent_arrays` decodes the weights a message sent (cached by
    the caller: a round's messages share them).
    """
    measured = [
        index
        for index, (sent, _) in enumerate(answered)
        if returns_trained_weights(sent.metadata.message_type) and ARRAYS in sent.content.array_records
    ]
    norms = [
        global_norm(difference(to_numpy(answered[i][1].content[ARRAYS]), sent_arrays(answered[i][0]))) for i in measured
    ]
    verdicts: list[Rejection | None] = [None] * len(answered)
    for index, verdict in zip(measured, norm_outliers(norms, ratio), strict=True):
        verdicts[index] = verdict
    return verdicts


def cap_claims(replies: list[Message], ratio: float) -> list[tuple[Message, float, float]]:
    """Cap each reply's claim at `ratio` x the median claim, in the reply; return (reply, claimed, counted) capped."""
    claims = [float(claim_of(reply)) for reply in replies]  # type: ignore[arg-type]
    changed = []
    for reply, claimed, counted in zip(replies, claims, capped_claims(claims, ratio), strict=True):
        if counted < claimed:
            reply.content[METRICS][NUM_EXAMPLES] = int(counted)
            changed.append((reply, claimed, counted))
    return changed
