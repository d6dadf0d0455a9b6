"""`python -m sim compare --preset NAME`: the papers' experiments, sized for 2 CPU cores and about 30 minutes.

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
- `dp-utility`: DP-FedAvg (McMahan et al. 2018, arXiv:1710.06963) at several noise
  multipliers against non-private FedAvg: final accuracy against epsilon (delta =
  1e-5, Poisson sampling, add/remove-one neighbours, the paper's convention). 500
  nodes of 8 digits each (the embedded 4,000-digit pool), q = 0.1 (about 50 clients
  per round), 100 rounds, logistic regression, flat clipping at C = 0.25, one local
  epoch with batch 10 and learning rate 0.1, server learning rate 1; and adaptive
  clipping (Andrew et al. 2021) at z = 1 from C_0 = 0.1. The paper trains an LSTM on
  Reddit posts of hundreds of thousands of users, hundreds to thousands per round; this
  is a setting in which the noise z * C / (q N) still lets a model learn on 2 CPU cores.
  C = 0.25, the learning rate and the rounds were chosen by a sweep of the same
  algorithm outside Flower (seeds 0, 1; C in {0.25, 0.5, 1, 2}, q in {0.1, 0.2, 0.3},
  N in {100, 200, 500}, 50 or 100 rounds, 1 or 5 local epochs, momentum 0 or 0.5):
  smaller C and more clients per round learned best under noise.

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
    "dp-utility": PaperPreset(
        strategies="non-private=fedavg,z0.5=fedavg,z1=fedavg,z2=fedavg,z4=fedavg,z1-adaptive=fedavg",
        settings=(
            ("z0.5", "dp=server-fixed dp-noise-multiplier=0.5"),
            ("z1", "dp=server-fixed dp-noise-multiplier=1.0"),
            ("z2", "dp=server-fixed dp-noise-multiplier=2.0"),
            ("z4", "dp=server-fixed dp-noise-multiplier=4.0"),
            ("z1-adaptive", "dp=server-adaptive dp-noise-multiplier=1.0 dp-clipping-norm=0.1"),
        ),
        common=(
            "model=logreg partitioner=iid client-sampling=poisson fraction-train=0.1 min-train-nodes=1 "
            "local-epochs=1 batch-size=10 learning-rate=0.1 dp-clipping-norm=0.25 dp-delta=1e-5 "
            "fraction-evaluate=0 validation-fraction=0"
        ),
        nodes=500,
        rounds=100,
        seeds=(0, 1, 2),
        target=0.85,
        centralized_epochs=20,
    ),
}
