"""FedDF (Lin et al. 2020, "Ensemble Distillation for Robust Model Fusion in Federated Learning").

Clients train and upload weights exactly as in FedAvg. The server averages them, then
distils the ensemble of client models into the averaged model on unlabelled server
data, as the authors' code does (`epfml/federated-learning-public-code`,
`noise_knowledge_transfer.py`): the teacher is the softmax of the clients' uniformly
averaged logits at temperature T (AVGLOGITS, T = 1), the student starts from the
average and takes up to `distill-steps` Adam steps on the KL divergence (batch
`distill-batch-size`, cosine learning rate over the steps, gradient norm clipped to 5),
is validated on a labelled server split every `distill-eval-every` steps, stops
after `distill-patience` steps without improvement and keeps its best checkpoint
(`validation_choice.py`). With `distill-fallback` (default on) the average itself
competes at step 0, so distillation never replaces it by something worse on validation.

Deliberate differences from the authors' code: the average is weighted by the
clients' examples (the paper's Algorithm 1; their code averages uniformly; set
`weighting=uniform` for theirs); fallback on by default (their
`return_best_model_on_val` is off in their commands); budgets sized for 2 CPU cores
(500 steps, validation every 25, patience 125 against 10,000, 100 and 1,000) on a
400-sample validation split; the distillation data is the 500-sample public slice of
the same pool by default (theirs: all of CIFAR-100 for CIFAR-10, with random crops
and flips), or another dataset with `distill-dataset`.
"""

from __future__ import annotations

from collections.abc import Iterable
from logging import INFO

from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.common import log

from strategies.arrays import reply_arrays, to_numpy, to_record
from strategies.distiller import Distiller
from strategies.fedavg import FedAvg


class FedDF(FedAvg):
    """FedAvg followed by server-side ensemble distillation, validated, best kept."""

    def __init__(self, *, distiller: Distiller, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.distiller = distiller

    def summary(self) -> None:
        """Log the distillation settings, then FedAvg's."""
        log(INFO, "\t├──> FedDF: %s", self.distiller.describe())
        super().summary()

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Average as FedAvg, then distil the clients' ensemble into the average."""
        replies = list(replies)
        averaged, metrics = super().aggregate_train(server_round, replies)
        if averaged is None:
            return None, metrics
        members = [reply_arrays(r.content) for r in self.usable_replies(replies)]
        distilled = self.distiller.distil_ensemble(to_numpy(averaged), members, server_round)
        self._round_metrics.update(distilled.metrics)
        return to_record(distilled.arrays), metrics
