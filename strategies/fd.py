"""FD, federated distillation (Jeong et al. 2018, arXiv:1811.11479, Algorithm 1).

No public set and no weights in either direction. Per round, each sampled device:

1. trains on its private data with the loss CE(F(w, x), y) + gamma * CE(softmax(Fhat_y), softmax(F(w, x)))
   per sample, where Fhat_y is its teacher's logit vector for the sample's own label
   (no teacher in round 1: plain cross entropy);
2. averages per label the logits of the forward passes of that training (detached),
   and uploads that labels x classes table with its samples per label.

The server keeps the tables of the round's devices and sends each device, with the
next round's request, its teacher: per label, the mean of the *other* devices' rows
(`label_logits.py`; the paper's (Fhat - Fbar^(i)) / (M - 1)). Upload and download are a
labels x classes table (10 x 10 floats for MNIST) plus one row of counts or flags.

There is no global model: the run's accuracy is the client models' mean accuracy on
the held-out test set (`has_global_model` is False; the federation loop reports it as
`central_accuracy`).

Deliberate differences from the paper (which has no public code): devices that do
not hold a label do not enter its average (the paper's formula divides by every
device; under a Dirichlet split that would average in rows of zeros); gamma defaults
to 1 and the temperature to 1, values the paper leaves open (third-party
re-implementations such as FedGen's use gamma = 1 with a softmax teacher). The
teacher a device gets leaves out its contribution of the last round it took part in
only when that was the round just aggregated; otherwise nothing of its own is in it.
"""

from __future__ import annotations

from collections.abc import Iterable
from logging import INFO
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.common import log
from flwr.serverapp import Grid

from strategies.arrays import Arrays, reply_arrays, to_record
from strategies.feddistill import FederatedDistillation, client_model_metrics
from strategies.label_logits import label_consensus_accuracy, label_teacher
from strategies.messages import readdressed
from strategies.protocol import HAS_TEACHER, LABEL_COUNTS, LABEL_LOGITS, TEACHER, TRAIN_LABEL_LOGITS


class FD(FederatedDistillation):
    """Devices exchange per-label average logits; each learns from the others' (leave-own-out) average."""

    def __init__(self, *, num_classes: int, **sampling: float | int) -> None:
        super().__init__(num_classes=num_classes, **sampling)
        self.contributors: list[int] = []
        self.means: list[np.ndarray] = []
        self.counts: list[np.ndarray] = []

    def summary(self) -> None:
        """Log the exchange, then Flower's sampling settings."""
        log(
            INFO,
            "\t├──> FD: per-label logits (%d x %d) up, a leave-own-out teacher down, no weights",
            self.num_classes,
            self.num_classes,
        )
        super().summary()

    def has_global_model(self) -> bool:
        """FD has none: the run is scored by its devices' models."""
        return False

    def state_dict(self) -> dict[str, Any]:
        """The last round's tables and who sent them (node ids of this Flower run, as text: 64-bit unsigned)."""
        return {
            "node_ids": [str(node_id) for node_id in self.contributors],
            "label_logits": np.stack(self.means) if self.means else None,
            "label_counts": np.stack(self.counts) if self.counts else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the tables; node ids differ in a resumed run, so no teacher leaves anything out at first."""
        self.contributors = [int(node) for node in state["node_ids"]]
        self.means = list(state["label_logits"]) if state["label_logits"] is not None else []
        self.counts = list(state["label_counts"]) if state["label_counts"] is not None else []

    def skipped_round_metrics(self) -> dict[str, float]:
        """A round that aggregated nothing leaves the devices' last reported figures standing."""
        return dict(self._round_metrics)

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Sample as Flower does; send each device its teacher (from round 2 on) and no weights."""
        sampled = super().configure_train(server_round, arrays, config, grid)
        return [self._request(message, config) for message in sampled]

    def _request(self, message: Message, config: ConfigRecord) -> Message:
        content = RecordDict({self.configrecord_key: config})
        if self.means:
            node_id = message.metadata.dst_node_id
            own = self.contributors.index(node_id) if node_id in self.contributors else None
            teacher, has_teacher = label_teacher(self.means, self.counts, own)
            content[TEACHER] = to_record({LABEL_LOGITS: teacher, HAS_TEACHER: has_teacher.astype(np.float32)})
        return readdressed(message, content=content, message_type=TRAIN_LABEL_LOGITS)

    def reply_reference(self, message: Message) -> Arrays | None:
        """What a reply must carry: a labels x classes table and the samples per label."""
        if message.metadata.message_type != TRAIN_LABEL_LOGITS:
            return None
        return {
            LABEL_LOGITS: np.zeros((self.num_classes, self.num_classes), dtype=np.float32),
            LABEL_COUNTS: np.zeros(self.num_classes, dtype=np.float32),
        }

    def aggregate_train(
        self,
        server_round: int,  # noqa: ARG002 (Flower's signature; FD's tables do not depend on the round)
        replies: Iterable[Message],
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Keep the round's tables for the next teachers; there is no global model to return."""
        replies = [r for r in replies if not r.has_error()]
        if not replies:
            return None, None
        tables = [reply_arrays(r.content) for r in replies]
        self.contributors = [r.metadata.src_node_id for r in replies]
        self.means = [table[LABEL_LOGITS] for table in tables]
        self.counts = [table[LABEL_COUNTS] for table in tables]
        contents = [r.content for r in replies]
        self._round_metrics = client_model_metrics(contents)
        agreement = label_consensus_accuracy(self.means, self.counts)
        if agreement is not None:
            self._round_metrics["consensus_accuracy"] = agreement
        return None, self.train_metrics_aggr_fn(contents, self.weighted_by_key)
