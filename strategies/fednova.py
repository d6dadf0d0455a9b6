"""FedNova (Wang, Liu, Liang, Joshi, Poor 2020, NeurIPS, arXiv:2007.07481): normalised averaging.

"Tackling the Objective Inconsistency Problem in Heterogeneous Federated Optimization".

Clients that run different numbers of local steps tau_i (unequal data, stragglers,
different epochs) pull FedAvg's average toward the objectives of those that ran
more. FedNova averages normalised updates instead: with p_i = n_i / sum_j n_j,

    x <- x - tau_eff sum_i p_i (x - y_i) / a_i,    tau_eff = sum_i p_i a_i,

where a_i = ||a_i||_1 counts how much client i's steps add up to: tau_i for plain
SGD, [tau_i - rho (1 - rho^tau_i) / (1 - rho)] / (1 - rho) with client momentum rho
(`client-momentum`), as in the authors' `FedNova` optimizer and NIID-Bench. With equal
a_i this is exactly FedAvg. Clients report the steps they ran (`local-steps`); the
server computes a_i from them (`strategies/aggregation.py`). Stragglers' partial work
is kept and normalised by their own tau_i.

The normalisation scales every array of an update, BatchNorm's running statistics
(and step counters) included, as NIID-Bench does; the authors' (JYWa's) FedNova
optimiser normalises only the parameters it steps.

Deliberate differences: the normalised average goes through fedapp's server
optimizer (the authors' global momentum `gmf` corresponds to `server-momentum`);
FedNova's proximal variant (a_i for FedProx's mu) is not offered; weight decay is
not used by fedapp's clients, so it needs no special treatment.
"""

from __future__ import annotations

from logging import INFO
from typing import Any

from flwr.app import RecordDict
from flwr.common import log

from strategies.aggregation import aggregation_weights, fednova_scales, normalized_steps
from strategies.arrays import Arrays, reply_metrics
from strategies.fedavg import FedAvg
from strategies.protocol import LOCAL_STEPS


class FedNova(FedAvg):
    """FedAvg of updates normalised by each client's local steps; stragglers' partial work kept."""

    drop_stragglers = False

    def __init__(self, *, client_momentum: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client_momentum = client_momentum

    def summary(self) -> None:
        """Log the client momentum the normalisation assumes, then FedAvg's settings."""
        log(INFO, "\t├──> FedNova: updates normalised by local steps, client momentum=%s", self.client_momentum)
        super().summary()

    def client_updates(self, contents: list[RecordDict]) -> list[Arrays]:
        """Each update scaled by tau_eff / a_i, so that FedAvg's weighted average becomes FedNova's."""
        updates = super().client_updates(contents)
        metrics = [reply_metrics(content) for content in contents]
        normalizers = [normalized_steps(int(m[LOCAL_STEPS]), self.client_momentum) for m in metrics]
        weights = aggregation_weights([int(m[self.weighted_by_key]) for m in metrics], self.weighting)
        scales = fednova_scales(normalizers, weights)
        total = sum(weights)
        self._round_metrics["tau_eff"] = sum(w / total * a for w, a in zip(weights, normalizers, strict=True))
        return [
            {key: (value * scale).astype(value.dtype) for key, value in update.items()}
            for update, scale in zip(updates, scales, strict=True)
        ]
