"""FD, federated distillation (Jeong et al. 2018, arXiv:1811.11479, Algorithm 1).

No public set and no weights in either direction. Per round, each sampled device:

1. trains on its private data with the loss CE(F(w, x), y) + gamma * CE(softmax(Fhat_y), softmax(F(w, x)))
   per sample, where Fhat_y is its teacher's logit vector for the sample's own label
   (no teacher in round 1: plain cross entropy);
2. averages per label the logits of the forward passes of that training (detached),
   and uploads that labels x classes table with which labels it holds (1) or not (0).

The server keeps each device's last table, by the device's stable key (its node id
in a plain Flower app), and sends each device, with its next request, its teacher:
per label, the mean of the *other* devices' rows (`label_logits.py`; the paper's
(Fhat - Fbar^(i)) / (M - 1)). With `fraction-train` < 1 a table is as old as the
last round its device took part in, so teachers mix rounds; a device's own table is
always left out. Upload and download are a labels x classes table (10 x 10 floats
for MNIST) plus one row of flags. Devices send which labels they hold, not how many
samples of each: the server needs no more, and counts would disclose the device's
label histogram.

There is no global model: the run's accuracy is the client models' mean accuracy on
the held-out test set (`has_global_model` is False; the federation loop reports it as
`central_accuracy`).

Deliberate differences from the paper (which has no public code): devices that do
not hold a label do not enter its average (the paper's formula divides by every
device; under a Dirichlet split that would average in rows of zeros); gamma defaults
to 1 and the temperature to 1, values the paper leaves open (third-party
re-implementations such as FedGen's use gamma = 1 with a softmax teacher). The
paper's server averages the tables of one round; keeping every device's last one
gives a device sampled after another the other's knowledge, as users expect, at the
price of staleness (a table is never dropped, and after a resume the devices restart
from their initial models while their old tables still teach until they report again).
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
from strategies.client_state import NodeKeys, node_key
from strategies.feddistill import FederatedDistillation, client_model_metrics
from strategies.label_logits import label_consensus_accuracy, label_teacher
from strategies.messages import readdressed
from strategies.protocol import HAS_TEACHER, LABEL_LOGITS, LABEL_PRESENCE, TEACHER, TRAIN_LABEL_LOGITS


class FD(FederatedDistillation):
    """Devices exchange per-label average logits; each learns from the others' (leave-own-out) last tables."""

    def __init__(self, *, num_classes: int, node_keys: NodeKeys | None = None, **sampling: float | int) -> None:
        super().__init__(num_classes=num_classes, **sampling)
        self.node_keys = node_keys
        self.means: dict[str, np.ndarray] = {}
        self.presence: dict[str, np.ndarray] = {}

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
        """Each device's last table, by device key (stable across a resume when the app knows its nodes)."""
        return {
            "node_keys": list(self.means),
            "label_logits": np.stack(list(self.means.values())) if self.means else None,
            "label_presence": np.stack(list(self.presence.values())) if self.presence else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the tables; a device's own is left out of its teacher again once it is known by the same key."""
        keys = [str(key) for key in state["node_keys"]]
        self.means = dict(zip(keys, state["label_logits"], strict=True)) if keys else {}
        self.presence = dict(zip(keys, state["label_presence"], strict=True)) if keys else {}

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
            keys = list(self.means)
            device = node_key(self.node_keys, message.metadata.dst_node_id)
            own = keys.index(device) if device in self.means else None
            teacher, has_teacher = label_teacher(list(self.means.values()), list(self.presence.values()), own)
            content[TEACHER] = to_record({LABEL_LOGITS: teacher, HAS_TEACHER: has_teacher.astype(np.float32)})
        return readdressed(message, content=content, message_type=TRAIN_LABEL_LOGITS)

    def reply_reference(self, message: Message) -> Arrays | None:
        """What a reply must carry: a labels x classes table and which labels the device holds."""
        if message.metadata.message_type != TRAIN_LABEL_LOGITS:
            return None
        return {
            LABEL_LOGITS: np.zeros((self.num_classes, self.num_classes), dtype=np.float32),
            LABEL_PRESENCE: np.zeros(self.num_classes, dtype=np.float32),
        }

    def aggregate_train(
        self,
        server_round: int,  # noqa: ARG002 (Flower's signature; FD's tables do not depend on the round)
        replies: Iterable[Message],
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Each replying device's table replaces its last one, for the next teachers; there is no global model."""
        replies = [r for r in replies if not r.has_error()]
        if not replies:
            return None, None
        for reply in replies:
            table = reply_arrays(reply.content)
            device = node_key(self.node_keys, reply.metadata.src_node_id)
            self.means[device] = table[LABEL_LOGITS]
            self.presence[device] = table[LABEL_PRESENCE]
        contents = [r.content for r in replies]
        self._round_metrics = client_model_metrics(contents)
        agreement = label_consensus_accuracy(list(self.means.values()), list(self.presence.values()))
        if agreement is not None:
            self._round_metrics["consensus_accuracy"] = agreement
        return None, self.train_metrics_aggr_fn(contents, self.weighted_by_key)
