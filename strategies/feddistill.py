"""Federated distillation by logit exchange (the FD / FedMD family).

Jeong et al. 2018 (FD, arXiv:1811.11479) and Li & Wang 2019 (FedMD): clients share
what their models predict, not their weights, so the upload is independent of model
size and client architectures may differ. Per round:

1. the server sends each sampled client the consensus soft labels on the public set
   (from the previous round) and, to clients whose architecture matches its own, its
   distilled weights;
2. the client digests (fits the consensus on the public set, `digest-epochs`), trains
   on its private data (`local-epochs`), and uploads its soft labels on the public set
   at temperature `distill-temperature`: public-size x classes floats;
3. the server averages the soft labels weighted by example counts into the new
   consensus and distils it into its own model (the global model that is evaluated).

Clients keep their own model between rounds in their Flower `Context.state`.
Deliberate differences: FD averages per-label logits over private data and FedMD uses
a labelled public set; here the public set is unlabelled (as in FedDF) and the server
also keeps a distilled model, so central accuracy is measured on one global model.
"""

from __future__ import annotations

from collections.abc import Iterable
from logging import INFO
from typing import Protocol

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.common import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg as FlowerFedAvg

from strategies.aggregation import aggregation_weights, weighted_average
from strategies.arrays import Arrays, reply_arrays, reply_metrics, to_numpy, to_record
from strategies.distiller import Distiller
from strategies.hooks import FederationHooks
from strategies.messages import readdressed
from strategies.protocol import CONSENSUS, EVALUATE_LOCAL, SOFT_LABELS, TRAIN_DISTILL


class NodeArchitectures(Protocol):
    """Which model architecture a node trains (the app learns it from its nodes)."""

    def architecture(self, node_id: int) -> str | None:
        """The architecture of node `node_id`, or None if unknown."""
        ...


class FedDistill(FlowerFedAvg, FederationHooks):
    """Clients exchange soft labels on a public set; the server distils their consensus."""

    def __init__(
        self,
        *,
        distiller: Distiller,
        server_model: str,
        num_classes: int,
        architectures: NodeArchitectures | None = None,
        weighting: str = "examples",
        **sampling: float | int,
    ) -> None:
        super().__init__(**sampling)  # type: ignore[arg-type]
        self.distiller = distiller
        self.server_model = server_model
        self.num_classes = num_classes
        self.architectures = architectures
        self.weighting = weighting
        self.consensus: np.ndarray | None = None
        self.server_arrays: Arrays = {}
        self._round_metrics: dict[str, float] = {}

    def summary(self) -> None:
        """Log the exchange's settings, then Flower's sampling settings."""
        log(
            INFO,
            "\t├──> Federated distillation: %d public samples x %d classes, server model %s; %s",
            self.distiller.public_size,
            self.num_classes,
            self.server_model,
            self.distiller.describe(),
        )
        super().summary()

    def state_dict(self) -> dict[str, np.ndarray | None]:
        """What carries over between rounds: the consensus soft labels (None before round 1's)."""
        return {"consensus": self.consensus}

    def load_state_dict(self, state: dict[str, np.ndarray | None]) -> None:
        """Restore the consensus saved by `state_dict` (resuming a run)."""
        self.consensus = state["consensus"]

    def round_metrics(self) -> dict[str, float]:
        """How confident the round's consensus is (mean top soft label)."""
        return dict(self._round_metrics)

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Sample as Flower does; send each node the consensus and, if it can use them, the server's weights.

        Without an architecture lookup (a plain Flower app) no node is sent the server's weights.
        """
        self.server_arrays = to_numpy(arrays)
        sampled = super().configure_train(server_round, arrays, config, grid)
        return [self._distill_message(message, arrays, config) for message in sampled]

    def _distill_message(self, message: Message, arrays: ArrayRecord, config: ConfigRecord) -> Message:
        content = RecordDict({self.configrecord_key: config})
        if self.consensus is not None:
            content[CONSENSUS] = to_record({SOFT_LABELS: self.consensus})
        node_id = message.metadata.dst_node_id
        if self.architectures is not None and self.architectures.architecture(node_id) == self.server_model:
            content[self.arrayrecord_key] = arrays
        return readdressed(message, content=content, message_type=TRAIN_DISTILL)

    def reply_reference(self, message: Message) -> Arrays | None:
        """What a reply to `message` must carry: soft labels of shape (public size, classes)."""
        if message.metadata.message_type != TRAIN_DISTILL:
            return None
        return {SOFT_LABELS: np.zeros((self.distiller.public_size, self.num_classes), dtype=np.float32)}

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Average the soft labels into the consensus and distil it into the server's model."""
        contents = [r.content for r in replies if not r.has_error()]
        if not contents:
            return None, None
        weights = aggregation_weights([int(reply_metrics(c)[self.weighted_by_key]) for c in contents], self.weighting)
        self.consensus = weighted_average([reply_arrays(c) for c in contents], weights)[SOFT_LABELS]
        distilled = self.distiller.distil(self.server_arrays, torch.from_numpy(self.consensus), server_round)
        self._round_metrics = {"consensus_confidence": float(self.consensus.max(axis=1).mean())}
        return to_record(distilled), self.train_metrics_aggr_fn(contents, self.weighted_by_key)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Sample as Flower does, but ask each node to evaluate its own model (no weights are sent)."""
        sampled = super().configure_evaluate(server_round, arrays, config, grid)
        local = RecordDict({self.configrecord_key: config})
        return [readdressed(message, content=local, message_type=EVALUATE_LOCAL) for message in sampled]
