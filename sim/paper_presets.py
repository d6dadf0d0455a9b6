"""`python -m sim compare --preset NAME`: the papers' experiments, sized for 2 CPU cores and 30 minutes.

- `fedavg-vs-fedsgd`: McMahan et al. 2017 (arXiv:1602.05629), the CNN on IID MNIST,
  FedAvg with E=5, B=10 against FedSGD (one full-batch gradient per client per
  round). The paper's claim: FedAvg needs far fewer rounds to a target accuracy
  (31x fewer to 99% on full MNIST). Here: the embedded 5,000 digits, a lower target.
- `fedprox-stragglers`: Li et al. 2020 (arXiv:1812.06127), Synthetic(1, 1) with
  logistic regression, E=20, B=10, 10 of 30 devices per round, 90% of them
  stragglers: FedAvg drops their work, FedProx (mu=1) keeps it; FedProx with mu=0
  isolates the gain of keeping partial work from that of the proximal term.
- `distillation`: FedAvg against FedDF (Lin et al. 2020) and logit-exchanging
  federated distillation (FedMD/FD family) on a Dirichlet(0.1) label split: accuracy
  against the megabytes it costs.
- `noniid-dirichlet` and `noniid-two-classes`: NIID-Bench (Li, Diao, Chen, He 2022,
  arXiv:2102.02079) on MNIST label skew, 10 nodes, all sampled every round, 3 seeds:
  FedAvg, FedProx (mu = 0.01), SCAFFOLD and FedNova on NIID-Bench's small CNN with
  its batch 64, learning rate 0.01 and client momentum 0.9, and beside them the
  personalised baselines, judged by each node's own model on its own validation split:
  Ditto (lambda = 1) and FedBN, with FedAvg on the same BatchNorm model as FedBN's
  reference. NIID-Bench's 10 local epochs are kept; its 50 rounds on 60,000 digits
  become 10 rounds on the embedded 4,000, so that both presets' 42 runs fit about an
  hour on 2 cores (one run measured at 4 to 5 s per round; docs/noniid.md).

Options given on the command line (`--rounds`, `--seeds`, `-c`, ...) override a
preset's values. A preset's rounds are a default that one strategy's own settings may
change (FedSGD needs many more, cheaper rounds); an explicit `--rounds` applies to all.

FedSGD's learning rate 0.1 was chosen by a sweep of full-batch gradient descent on the
pooled training data (what FedSGD with every node sampled computes), CNN, seed 0:
0.5 and 1.0 diverged, 0.2 oscillated (0.69 at step 80), 0.1 reached 0.949 at step 70.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaperPreset:
    """A comparison's defaults: strategies (labels), their own settings, shared settings, sizes."""

    strategies: str
    settings: tuple[tuple[str, str], ...]
    common: str
    nodes: int
    rounds: int
    seeds: tuple[int, ...]
    target: float
    centralized_epochs: int


NIID_BENCH_COMMON = (
    "model=cnn-small local-epochs=10 batch-size=64 learning-rate=0.01 client-momentum=0.9 fraction-evaluate=1 "
    "ditto-lambda=1"
)
NIID_BENCH_STRATEGIES = "fedavg,fedprox,scaffold,fednova,ditto,fedavg-bn=fedavg,fedbn"
NIID_BENCH_SETTINGS = (
    ("fedprox", "proximal-mu=0.01"),
    ("fedavg-bn", "model=cnn-small-bn"),
    ("fedbn", "model=cnn-small-bn"),
)


def _niid_bench(partition: str) -> PaperPreset:
    """NIID-Bench's comparison on MNIST split by `partition` (run-config keys)."""
    return PaperPreset(
        strategies=NIID_BENCH_STRATEGIES,
        settings=NIID_BENCH_SETTINGS,
        common=f"{NIID_BENCH_COMMON} {partition}",
        nodes=10,
        rounds=10,
        seeds=(0, 1, 2),
        target=0.9,
        centralized_epochs=10,
    )


PAPER_PRESETS: dict[str, PaperPreset] = {
    "fedavg-vs-fedsgd": PaperPreset(
        strategies="fedavg,fedsgd",
        settings=(("fedsgd", "learning-rate=0.1 num-server-rounds=150"),),
        common=(
            "model=cnn partitioner=iid local-epochs=5 batch-size=10 learning-rate=0.05 "
            "fraction-evaluate=0 validation-fraction=0"
        ),
        nodes=10,
        rounds=10,
        seeds=(0,),
        target=0.95,
        centralized_epochs=10,
    ),
    "fedprox-stragglers": PaperPreset(
        strategies="fedavg,fedprox-mu0=fedprox,fedprox",
        settings=(("fedprox-mu0", "proximal-mu=0"), ("fedprox", "proximal-mu=1")),
        common=(
            "dataset=synthetic synthetic-alpha=1 synthetic-beta=1 partitioner=natural model=logreg "
            "local-epochs=20 batch-size=10 learning-rate=0.01 straggler-fraction=0.9 "
            "fraction-train=0.34 fraction-evaluate=0 min-train-nodes=1"
        ),
        nodes=30,
        rounds=100,
        seeds=(0,),
        target=0.6,
        centralized_epochs=20,
    ),
    "distillation": PaperPreset(
        strategies="fedavg,feddf,feddistill",
        settings=(),
        common="model=cnn partitioner=dirichlet dirichlet-alpha=0.1 fraction-evaluate=0",
        nodes=10,
        rounds=10,
        seeds=(0,),
        target=0.8,
        centralized_epochs=10,
    ),
    "noniid-dirichlet": _niid_bench("partitioner=dirichlet dirichlet-alpha=0.5"),
    "noniid-two-classes": _niid_bench("partitioner=shard classes-per-node=2"),
}
