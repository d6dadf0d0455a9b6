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

The distilled model takes the average's place before the server optimizer: its step is
along (distilled - w), so with `server-learning-rate` 1 and no momentum the new global
model is the distilled one, and with `server-momentum` > 0 distillation enters the
momentum buffer (FedAvgM of the distilled updates) instead of being thrown away by it.

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

from logging import INFO

import numpy as np
from flwr.app import RecordDict
from flwr.common import log

from strategies.arrays import Arrays, reply_arrays
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

    def server_update(self, server_round: int, average: Arrays, contents: list[RecordDict]) -> Arrays:
        """Distil the clients' ensemble into the averaged model w + `average`; the update is the distilled model - w.

        Computed in float64, so that the server optimizer's plain step (learning rate 1,
        no momentum) lands on the distilled weights exactly.
        """
        start = {key: value.astype(np.float64) for key, value in self.global_arrays.items()}
        averaged = {key: (start[key] + average[key]).astype(value.dtype) for key, value in self.global_arrays.items()}
        members = [reply_arrays(content) for content in contents]
        distilled = self.distiller.distil_ensemble(averaged, members, server_round)
        self._round_metrics.update(distilled.metrics)
        return {key: distilled.arrays[key].astype(np.float64) - start[key] for key in start}
