"""FedMD (Li & Wang 2019, arXiv:1910.03581; authors' code `diogenes0319/FedMD_clean`).

Parties keep their own models (of any architecture) and exchange logits on a shared
public set. On its first round a party does FedMD's transfer learning: it trains its
fresh model on the *labelled* public set. Then, every round:

1. digest: fit the consensus logits of the previous round on that round's public
   subset (mean absolute error on logits, Adam, `digest-epochs`, `digest-batch-size`);
2. revisit: train on its private data (`local-epochs`, the run's SGD settings);
3. communicate: score this round's public subset (`public-samples-per-round`, all by
   default) with its model and upload the logits.

The server's consensus is the uniform mean of the parties' logits (`consensus.py`).
As in the design fedapp started from, the server also distils each consensus into a
global model of its own architecture (`model`) on the public subset, with the run's
`Distiller` (FedDF's validated distillation); that model is the run's
`central_accuracy`, the parties' models are `client_accuracy_*`.

Deliberate differences from the authors' code: the public set is a 500-digit slice of
the same MNIST pool (theirs: 60,000 MNIST digits for EMNIST-letter parties, a fresh
5,000 each round), so transfer learning alone is already strong and the
collaboration's gain is smaller; transfer learning runs a fixed `transfer-epochs` with
the run's SGD (theirs: Adam, 20 epochs with early stopping) and no separate stage of
private training before round 1 (its role is taken by round 1's revisit); the revisit
uses the run's SGD learning rate and batch size, like every other strategy of a
comparison (theirs: Adam, batch 5); the digest batch defaults to 32 (theirs 256, on
10x more data); optimiser state is not kept between rounds. With
`push-server-weights`, parties of the server's architecture are also sent the
server's distilled weights every round (the design fedapp started from; off by default).
"""

from __future__ import annotations

from collections.abc import Iterable
from logging import INFO
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.common import log
from flwr.serverapp import Grid

from strategies.arrays import Arrays, reply_arrays, to_numpy, to_record
from strategies.consensus import alignment_subset, consensus_accuracy, consensus_confidence, uniform_consensus
from strategies.distiller import Distiller
from strategies.feddistill import FederatedDistillation, NodeArchitectures, client_model_metrics
from strategies.messages import readdressed
from strategies.protocol import CONSENSUS, CONSENSUS_ROUND, PUBLIC_LOGITS, SERVER_ROUND, TRAIN_DISTILL


class FedMD(FederatedDistillation):
    """Parties exchange logits on a public set; the server averages them and distils its own model."""

    def __init__(
        self,
        *,
        distiller: Distiller,
        server_model: str,
        num_classes: int,
        public_samples: int = 0,
        seed: int = 0,
        architectures: NodeArchitectures | None = None,
        push_weights: bool = False,
        **sampling: float | int,
    ) -> None:
        super().__init__(num_classes=num_classes, **sampling)
        self.distiller = distiller
        self.server_model = server_model
        self.public_samples = public_samples
        self.seed = seed
        self.architectures = architectures
        self.push_weights = push_weights
        self.consensus: np.ndarray | None = None
        self.consensus_round = 0
        self.server_arrays: Arrays = {}

    def summary(self) -> None:
        """Log the exchange's settings, then Flower's sampling settings."""
        log(
            INFO,
            "\t├──> FedMD: logits on %d of %d public samples per round, uniform consensus, server model %s%s; %s",
            len(self.subset(1)),
            self.distiller.public_size,
            self.server_model,
            ", its weights pushed to parties of its architecture" if self.push_weights else "",
            self.distiller.describe(),
        )
        super().summary()

    def subset(self, server_round: int) -> np.ndarray:
        """The public samples the parties score in `server_round`."""
        return alignment_subset(self.distiller.public_size, self.public_samples, self.seed, server_round)

    def state_dict(self) -> dict[str, Any]:
        """What carries over between rounds: the consensus logits and the round they are for."""
        return {"consensus": self.consensus, "consensus_round": self.consensus_round}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the consensus saved by `state_dict` (resuming a run)."""
        self.consensus = state["consensus"]
        self.consensus_round = int(state["consensus_round"])

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Sample as Flower does; send each party the consensus (from round 2 on)."""
        self.server_arrays = to_numpy(arrays)
        if self.consensus is not None:
            config[CONSENSUS_ROUND] = self.consensus_round
        sampled = super().configure_train(server_round, arrays, config, grid)
        return [self._request(message, arrays, config) for message in sampled]

    def _request(self, message: Message, arrays: ArrayRecord, config: ConfigRecord) -> Message:
        content = RecordDict({self.configrecord_key: config})
        if self.consensus is not None:
            content[CONSENSUS] = to_record({PUBLIC_LOGITS: self.consensus})
        if self._receives_weights(message.metadata.dst_node_id):
            content[self.arrayrecord_key] = arrays
        return readdressed(message, content=content, message_type=TRAIN_DISTILL)

    def _receives_weights(self, node_id: int) -> bool:
        """True if `push-server-weights` is on and node `node_id` trains the server's architecture."""
        if not self.push_weights or self.architectures is None:
            return False
        return self.architectures.architecture(node_id) == self.server_model

    def reply_reference(self, message: Message) -> Arrays | None:
        """What a reply must carry: logits on the round's public subset (samples x classes)."""
        if message.metadata.message_type != TRAIN_DISTILL:
            return None
        server_round = int(message.content[self.configrecord_key][SERVER_ROUND])
        return {PUBLIC_LOGITS: np.zeros((len(self.subset(server_round)), self.num_classes), dtype=np.float32)}

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Average the logits uniformly into the consensus and distil it into the server's model."""
        contents = [r.content for r in replies if not r.has_error()]
        if not contents:
            return None, None
        self.consensus = uniform_consensus([reply_arrays(c)[PUBLIC_LOGITS] for c in contents])
        self.consensus_round = server_round
        samples = self.subset(server_round)
        distilled = self.distiller.distil_logits(self.server_arrays, self.consensus, samples, server_round)
        self._round_metrics = {
            **client_model_metrics(contents),
            "consensus_confidence": consensus_confidence(self.consensus),
            **distilled.metrics,
        }
        labels = self.distiller.public_labels()
        if labels is not None:
            self._round_metrics["consensus_accuracy"] = consensus_accuracy(self.consensus, labels[samples])
        return to_record(distilled.arrays), self.train_metrics_aggr_fn(contents, self.weighted_by_key)
