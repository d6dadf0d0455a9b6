"""SCAFFOLD's control variates (Karimireddy et al. 2020, Algorithm 1, option II) as pure functions.

Client i holds its control variate c_i and receives the global weights x and the
server's control variate c. Each of its K local steps is corrected by c - c_i:

    y_i <- y_i - lr (g_i(y_i) - c_i + c)

after which (option II) it sets c_i+ = c_i - c + (x - y_i) / (K lr) and sends
Delta c_i = c_i+ - c_i. The server, over the sampled clients S of all N clients, adds

    c <- c + (1/N) sum_{i in S} Delta c_i.

The correction is applied right after each optimiser step, p <- p - lr (c - c_i),
outside any momentum buffer, as NIID-Bench does (`experiments.py`,
`train_net_scaffold`): with plain SGD that is the paper's corrected step exactly,
and with client momentum the correction keeps the size of one step.

Client-side functions take torch tensors (the node's parameters); the server's update
takes NumPy arrays and sums in float64.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from strategies.arrays import Arrays

Tensors = dict[str, torch.Tensor]


def correction(server: Mapping[str, torch.Tensor], client: Mapping[str, torch.Tensor]) -> Tensors:
    """c - c_i, the drift correction a client subtracts (times the learning rate) after each step."""
    return {key: server[key] - client[key] for key in server}


@torch.no_grad()
def apply_correction(
    parameters: Mapping[str, torch.Tensor], corrections: Mapping[str, torch.Tensor], learning_rate: float
) -> None:
    """p <- p - lr (c - c_i) for every parameter that has a correction, in place."""
    for key, value in corrections.items():
        parameters[key].sub_(value, alpha=learning_rate)


def updated_client_control(
    client: Mapping[str, torch.Tensor],
    server: Mapping[str, torch.Tensor],
    start: Mapping[str, torch.Tensor],
    end: Mapping[str, torch.Tensor],
    steps: int,
    learning_rate: float,
) -> Tensors:
    """Option II: c_i+ = c_i - c + (x - y_i) / (K lr), for weights x before and y_i after K local steps.

    A client that ran no step (no data, or zero epochs) keeps its c_i.
    """
    if steps == 0:
        return {key: value.clone() for key, value in client.items()}
    scale = 1.0 / (steps * learning_rate)
    return {key: client[key] - server[key] + (start[key] - end[key]) * scale for key in client}


def server_control_update(server: Arrays, deltas: Sequence[Arrays], population: int) -> Arrays:
    """c + (1/N) sum_i Delta c_i over the replies received, N the number of all clients."""
    if population < len(deltas):
        raise ValueError(f"population {population} is smaller than the {len(deltas)} replies")
    updated: Arrays = {}
    for key, value in server.items():
        total = np.zeros(value.shape, dtype=np.float64)
        for delta in deltas:
            total += delta[key].astype(np.float64)
        updated[key] = (value.astype(np.float64) + total / population).astype(value.dtype)
    return updated
