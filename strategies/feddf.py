"""FedDF (Lin et al. 2020, "Ensemble Distillation for Robust Model Fusion in Federated Learning").

Clients train and upload weights exactly as in FedAvg. The server averages them, then
distils the ensemble of client models into the averaged model on unlabelled
server-side data: the teacher is the softmax of the clients' averaged logits at
temperature T (the paper's AVGLOGITS), the student starts from the average and is
trained with Adam on the KL divergence (`distill-epochs`, `distill-learning-rate`).

Deliberate differences from the paper: a fixed number of distillation epochs instead
of early stopping on a validation set, and the unlabelled data is a slice of the same
MNIST pool that no client trains on (the paper draws it from another dataset).
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
    """FedAvg followed by server-side ensemble distillation on the public set."""

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
        teacher = self.distiller.ensemble_soft_labels(members)
        distilled = self.distiller.distil(to_numpy(averaged), teacher, server_round)
        return to_record(distilled), metrics
