"""Every name `-c strategy=...` accepts, with what the strategy is and which settings it allows.

`classification_only`: the strategy exchanges or distils soft labels (class
probabilities at a temperature), which a regression has not; `task = "regression"`
refuses it. Every other strategy averages weights or gradients, whatever the loss.

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
    """False when federated evaluation scores each node's own model (distillation, FedBN, Ditto), which
    no training message carries: such a strategy evaluates in an exchange of its own."""
    classification_only: bool = False
    needs_batch_norm: bool = False
    server_distillation: str = ""
    """What the server distils into its model: "" nothing, "ensemble" (FedDF), "consensus" (FedMD)."""

    @property
    def distils_on_server(self) -> bool:
        """True when the server distils (and so validates on a labelled server split)."""
        return bool(self.server_distillation)

    @property
    def distils_ensemble(self) -> bool:
        """True for FedDF: the server distils the clients' ensemble, on any unlabelled data."""
        return self.server_distillation == "ensemble"


def _builtin(description: str) -> StrategySpec:
    """One of Flower's own strategies: no local-training settings of ours, no DP of ours."""
    return StrategySpec(description, local_training=False)


FEDMD = StrategySpec(
    "FedMD (Li & Wang 2019): clients exchange logits on a public set, keep their own models; "
    "the server distils the consensus into its model ('feddistill' is another name for it)",
    uses_public_set=True,
    heterogeneous_clients=True,
    server_distillation="consensus",
    classification_only=True,
    evaluates_global_model=False,
)

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
    "scaffold": StrategySpec(
        "SCAFFOLD (Karimireddy et al. 2020): control variates correct client drift; twice FedAvg's traffic",
        own_sampling=True,
    ),
    "fednova": StrategySpec(
        "FedNova (Wang et al. 2020): updates normalised by each client's local steps (stragglers' work kept)",
        own_sampling=True,
    ),
    "fedbn": StrategySpec(
        "FedBN (Li et al. 2021): BatchNorm layers stay on the clients; personalised accuracy",
        needs_batch_norm=True,
        own_sampling=True,
        evaluates_global_model=False,
    ),
    "ditto": StrategySpec(
        "Ditto (Li et al. 2021): personal models regularised toward the global one; personalised accuracy",
        own_sampling=True,
        evaluates_global_model=False,
    ),
    # No DP for FedDF: the server distils the ensemble of the clients' raw (unclipped,
    # unnoised) models into the global model, so the released model is not private.
    "feddf": StrategySpec(
        "FedDF (Lin et al. 2020): FedAvg + validated server-side ensemble distillation",
        uses_public_set=True,
        own_sampling=True,
        server_distillation="ensemble",
        classification_only=True,
    ),
    "fd": StrategySpec(
        "FD (Jeong et al. 2018): clients exchange per-label average logits, keep their own models",
        heterogeneous_clients=True,
        classification_only=True,
        evaluates_global_model=False,
    ),
    "fedmd": FEDMD,
    "feddistill": FEDMD,
    "fedadam": _builtin("Flower's FedAdam (Reddi et al. 2021): server-side Adam on the averaged update"),
    "fedyogi": _builtin("Flower's FedYogi (Reddi et al. 2021): server-side Yogi"),
    "fedadagrad": _builtin("Flower's FedAdagrad (Reddi et al. 2021): server-side Adagrad"),
    "fedmedian": _builtin("Flower's FedMedian (Yin et al. 2018): coordinate-wise median"),
    "fedtrimmedavg": _builtin("Flower's FedTrimmedAvg (Yin et al. 2018): coordinate-wise trimmed mean"),
    "krum": _builtin("Flower's Krum (Blanchard et al. 2017): the update closest to its neighbours"),
}
