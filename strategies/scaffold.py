"""SCAFFOLD (Karimireddy et al. 2020, "SCAFFOLD: Stochastic Controlled Averaging for Federated Learning", ICML).

Algorithm 1 with option II control variates. The server keeps the global weights x
and its control variate c; each client i keeps its own c_i. Per round the server
sends x and c; the client runs K local steps corrected by c - c_i, sets
c_i+ = c_i - c + (x - y_i) / (K lr) and sends back its weights y_i and
Delta c_i = c_i+ - c_i; the server moves x by the (server optimizer's step on the)
average update and sets c <- c + (1/N) sum_i Delta c_i over the N clients. The
arithmetic is `strategies/control_variates.py`; the client side is
`fedapp/client_app.py` (`train.scaffold`). Where c_i lives between rounds, and why
a resumed run continues from exactly the state its checkpoint saw, is explained in
`strategies/client_state.py`.

Traffic is twice FedAvg's both ways (x and c down, y_i and Delta c_i up), as in the
paper; fedapp measures it from the records sent.

Deliberate choices and differences:
- the update of x is FedAvg's: weighted by examples (as NIID-Bench does; `weighting =
  uniform` gives the paper's plain mean), with the global learning rate
  `server-learning-rate` (eta_g, default 1) and optional server momentum;
- c and every c_i start at zero (the paper's convention; NIID-Bench starts them at a
  random network's weights, an offset in the correction c - c_i that cancels only once
  every client has been sampled: with partial participation, several rounds in);
- control variates cover the trainable parameters; BatchNorm running statistics are
  averaged as FedAvg does (NIID-Bench corrects every state_dict entry);
- with client momentum (`client-momentum`) the correction is applied after each
  optimizer step, outside the momentum buffer, as NIID-Bench does; without momentum
  that is the paper's step exactly;
- K is the number of steps each client actually ran (stragglers run fewer);
  stragglers are dropped as in FedAvg, and so is their Delta c_i;
- a client's new c_i counts only once the server aggregated its reply (the paper's
  client keeps c_i+ whatever becomes of its reply); so c stays (1/N) sum_i c_i.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from logging import INFO
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.common import log
from flwr.serverapp import Grid

from strategies.aggregation import difference, global_norm
from strategies.arrays import Arrays, to_numpy, to_record
from strategies.client_state import FedAvgWithClientState
from strategies.control_variates import server_control_update
from strategies.protocol import CONTROL_VARIATE, TRAIN_SCAFFOLD


class Scaffold(FedAvgWithClientState):
    """FedAvg with control variates on the server (c) and on every client (c_i)."""

    train_message_type = TRAIN_SCAFFOLD

    def __init__(self, *, control_keys: Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.control_keys = list(control_keys)
        self.control: Arrays = {}

    def summary(self) -> None:
        """Log what the control variates cover, then FedAvg's settings."""
        log(INFO, "\t├──> SCAFFOLD: option II control variates over %d parameter arrays", len(self.control_keys))
        super().summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Send x and c (zero before the first aggregation) to the sampled clients."""
        if not self.control:
            weights = to_numpy(arrays)
            self.control = {key: np.zeros_like(weights[key]) for key in self.control_keys}
        return super().configure_train(server_round, arrays, config, grid)

    def train_arrays(self) -> dict[str, ArrayRecord]:
        """The server's control variate c, beside the global weights."""
        return {CONTROL_VARIATE: to_record(self.control)}

    def client_updates(self, contents: list[RecordDict]) -> list[Arrays]:
        """Each reply's change to the global weights, y_i - x (its weights record; the other is Delta c_i)."""
        return [difference(to_numpy(content[self.arrayrecord_key]), self.global_arrays) for content in contents]

    def aggregated(self, server_round: int, replies: list[Message]) -> None:
        """After FedAvg's average of `replies`: c <- c + (1/N) sum_i Delta c_i over them, and their c_i count."""
        super().aggregated(server_round, replies)
        deltas = [to_numpy(reply.content[CONTROL_VARIATE]) for reply in replies]
        self.control = server_control_update(self.control, deltas, self.population)
        self._round_metrics["control_variate_norm"] = global_norm(self.control)

    def state_dict(self) -> dict[str, Any]:
        """FedAvg's state, the node-state ledger and the server's control variate c."""
        return {**super().state_dict(), "control": dict(self.control)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (resuming a run)."""
        super().load_state_dict(state)
        self.control = dict(state["control"])
