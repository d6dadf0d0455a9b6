"""Every name `-c strategy=...` accepts, with what the strategy is and which settings it allows.

Pure data, read by config validation on both sides (the ServerApp and every
ClientApp), so a ClientApp never imports the strategies' server code; the ServerApp
builds the strategy from its name in `strategy_factory.py`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StrategySpec:
    """What a strategy is, and which settings it needs or allows (config validation enforces them).

    `supports_dp`: `dp` may wrap its averaging; `own_sampling`: it samples clients itself,
    so `client-sampling = "poisson"` is allowed.
    """

    description: str
    uses_public_set: bool = False
    local_training: bool = True
    supports_dp: bool = False
    own_sampling: bool = False
    heterogeneous_clients: bool = False
    evaluates_global_model: bool = True


def _builtin(description: str) -> StrategySpec:
    """One of Flower's own strategies: no local-training settings of ours, no DP of ours."""
    return StrategySpec(description, local_training=False)


STRATEGIES: dict[str, StrategySpec] = {
    "fedavg": StrategySpec(
        "FedAvg (McMahan et al. 2017): weighted average of client models, server lr/momentum",
        supports_dp=True,
        own_sampling=True,
    ),
    "fedsgd": StrategySpec(
        "FedSGD (McMahan et al. 2017): one full-batch gradient per client per round",
        local_training=False,
        own_sampling=True,
    ),
    "fedprox": StrategySpec(
        "FedProx (Li et al. 2020): proximal term on clients, stragglers' partial work kept",
        supports_dp=True,
        own_sampling=True,
    ),
    # No DP for FedDF: the server distils the ensemble of the clients' raw (unclipped,
    # unnoised) models into the global model, so the released model is not private.
    "feddf": StrategySpec(
        "FedDF (Lin et al. 2020): FedAvg + server-side ensemble distillation", uses_public_set=True, own_sampling=True
    ),
    "feddistill": StrategySpec(
        "Federated distillation (FD/FedMD): clients exchange soft labels on a public set",
        uses_public_set=True,
        heterogeneous_clients=True,
        evaluates_global_model=False,
    ),
    "fedadam": _builtin("Flower's FedAdam (Reddi et al. 2021): server-side Adam on the averaged update"),
    "fedyogi": _builtin("Flower's FedYogi (Reddi et al. 2021): server-side Yogi"),
    "fedadagrad": _builtin("Flower's FedAdagrad (Reddi et al. 2021): server-side Adagrad"),
    "fedmedian": _builtin("Flower's FedMedian (Yin et al. 2018): coordinate-wise median"),
    "fedtrimmedavg": _builtin("Flower's FedTrimmedAvg (Yin et al. 2018): coordinate-wise trimmed mean"),
    "krum": _builtin("Flower's Krum (Blanchard et al. 2017): the update closest to its neighbours"),
}
