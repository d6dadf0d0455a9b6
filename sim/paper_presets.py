"""`python -m sim compare --preset NAME`: the papers' experiments, sized for 2 CPU cores, over 3 seeds.

- `fedavg-vs-fedsgd`: McMahan et al. 2017 (arXiv:1602.05629), the CNN on IID MNIST,
  FedAvg with E=5, B=10 against FedSGD (one full-batch gradient per client per
  round). The paper's claim: FedAvg needs far fewer rounds to a target accuracy
  (31x fewer to 99% on full MNIST). Here: the embedded 5,000 digits, a lower target.
- `fedprox-stragglers`: Li et al. 2020 (arXiv:1812.06127), Synthetic(1, 1) with
  logistic regression, E=20, B=10, 10 of 30 devices per round, 90% of them
  stragglers, 200 rounds as in the paper: FedAvg drops their work, FedProx (mu=1)
  keeps it; FedProx with mu=0 isolates the gain of keeping partial work from that of
  the proximal term. As in the paper, devices train on all their data (no held-out
  federated-evaluation split: the test set is Synthetic's own 10% per device).
- `distillation`: FedAvg against FedDF (Lin et al. 2020), FD (Jeong et al. 2018) and
  FedMD (Li & Wang 2019) on a Dirichlet(0.1) label split of 10 nodes: accuracy (the
  server's and the client models') against the megabytes it costs. The 2NN, 20
  rounds: the CNN's server distillation and client evaluations cost ten times more
  on 2 CPU cores. Every run reserves the same 500-digit public slice and 400-digit
  server validation slice (FD and FedAvg use neither), leaving 3,100 digits to the nodes.
  `fedmd` revisits its private data with every strategy's SGD (learning rate 0.05);
  `fedmd-lr0.01` with a fifth of it, closer to how little the authors' revisit (8 Adam
  steps at 1e-3 per round) moves a party away from the consensus it just digested.
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
- `cifar10` and `cifar10-alpha0.1` (online: CIFAR-10 from the Hugging Face hub,
  `uoft-cs/cifar10`): FedDF's CIFAR-10 setting, ResNet-8 on 20 nodes split by
  Dirichlet(1) and Dirichlet(0.1), 40 local epochs of SGD at lr 0.1, batch 64, crop and
  flip augmentation, 40% of the nodes per round, 100 rounds (the authors' README, see
  /work/research/distillation-and-noniid.md A3), FedAvg against FedDF. Sized for a GPU
  and the full data set, not for 2 CPU cores.
- `femnist` (online: `flwrlabs/femnist`): the LEAF FEMNIST benchmark, 62 classes of
  28x28 handwritten characters split naturally by writer (`writer_id`; 3,597 writers
  grouped into 100 nodes), the FedAvg CNN, 10% of the nodes per round, FedAvg against
  FedProx (mu = 0.01).
- `regression` (offline): the design's first example, an MLP 10 -> 5 -> 1 trained with
  MSE by FedAvg over 10 nodes on scikit-learn's diabetes table (IID split), against the
  centralized baseline; compared by R² (target 0.4), with RMSE and MAE beside it.

The online presets need the Hugging Face hub; offline they stop before any run with
one line saying so.
- `noniid-dirichlet` and `noniid-two-classes`: NIID-Bench (Li, Diao, Chen, He 2022,
  arXiv:2102.02079) on MNIST label skew, 10 nodes, all sampled every round, 3 seeds:
  FedAvg, FedProx (mu = 0.01), SCAFFOLD and FedNova on NIID-Bench's small CNN with
  its batch 64, learning rate 0.01 and client momentum 0.9, and beside them the
  personalised baselines, judged by each node's own model on its own validation split:
  Ditto (lambda = 1) and FedBN, with FedAvg on the same BatchNorm model as FedBN's
  reference. NIID-Bench's 10 local epochs are kept; its 50 rounds on 60,000 digits
  become 10 rounds on the embedded 4,000, so that both presets' 42 runs fit about an
  hour on 2 cores (one run measured at 4 to 5 s per round; docs/noniid.md).
- `robustness`: issue 25's defences against attacks (docs/robustness.md): FedAvg, the
  2NN, 10 nodes split by Dirichlet(0.5), 20 rounds, 3 seeds; clean, then 20% attacking
  nodes (chosen by the seed) with each attack under the default screening, sign-flip
  (which the default screens do not stop) against the median and the trimmed mean, and ALIE
  ("a little is enough", Baruch et al. 2019), which hides under the screens, against
  the mean and each robust rule (median, trimmed mean at beta 0.2, Multi-Krum with f = 2
  and m = 5, centered clipping at tau 1). `min-train-nodes=7` (and `min-available-nodes`) is Multi-Krum's minimum
  (n > 2f + 2), set for every run so that they differ only in attack and rule.

Options given on the command line (`--rounds`, `--seeds`, `-c`, ...) override a
preset's values. A preset's rounds are a default that one strategy's own settings may
change (FedSGD needs many more, cheaper rounds); an explicit `--rounds` applies to all.

FedSGD's learning rate 0.1 was chosen by a sweep of full-batch gradient descent on the
pooled training data (what FedSGD with every node sampled computes), CNN, seed 0:
0.5 and 1.0 diverged, 0.2 oscillated (0.69 at step 80), 0.1 reached 0.949 at step 70.
"""

from __future__ import annotations

from dataclasses import dataclass

CIFAR10 = (
    "dataset=uoft-cs/cifar10 model=resnet8 partitioner=dirichlet augment=standard local-epochs=40 "
    "learning-rate=0.1 batch-size=64 fraction-train=0.4 fraction-evaluate=0 min-train-nodes=2"
)
PAPER_SEEDS = (0, 1, 2)
"""Every preset runs these seeds unless `--seeds` says otherwise: a figure must survive a second seed."""


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


def _cifar10(alpha: float, target: float) -> PaperPreset:
    """FedDF's CIFAR-10 comparison (ResNet-8, 20 nodes) on a Dirichlet(`alpha`) split."""
    return PaperPreset(
        strategies="fedavg,feddf",
        settings=(),
        common=f"{CIFAR10} dirichlet-alpha={alpha}",
        nodes=20,
        rounds=100,
        seeds=PAPER_SEEDS,
        target=target,
        centralized_epochs=100,
    )


ATTACKERS = "attackers=0.2"
ALIE = f"attack=alie {ATTACKERS}"
ROBUSTNESS_RUNS = (
    ("clean", ""),
    *((attack, f"attack={attack} {ATTACKERS}") for attack in ("sign-flip", "scale", "gaussian", "num-examples")),
    ("label-flip", f"attack=label-flip {ATTACKERS}"),
    ("sign-flip-median", f"attack=sign-flip {ATTACKERS} aggregation=median"),
    ("sign-flip-trimmed-mean", f"attack=sign-flip {ATTACKERS} aggregation=trimmed-mean aggregation-trim-fraction=0.2"),
    ("alie-mean", ALIE),
    ("alie-median", f"{ALIE} aggregation=median"),
    ("alie-trimmed-mean", f"{ALIE} aggregation=trimmed-mean aggregation-trim-fraction=0.2"),
    ("alie-multi-krum", f"{ALIE} aggregation=multi-krum aggregation-byzantine=2 aggregation-selected=5"),
    ("alie-centered-clipping", f"{ALIE} aggregation=centered-clipping aggregation-centered-clipping-tau=1.0"),
)


def _niid_bench(partition: str) -> PaperPreset:
    """NIID-Bench's comparison on MNIST split by `partition` (run-config keys)."""
    return PaperPreset(
        strategies=NIID_BENCH_STRATEGIES,
        settings=NIID_BENCH_SETTINGS,
        common=f"{NIID_BENCH_COMMON} {partition}",
        nodes=10,
        rounds=10,
        seeds=PAPER_SEEDS,
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
        seeds=PAPER_SEEDS,
        target=0.95,
        centralized_epochs=10,
    ),
    "fedprox-stragglers": PaperPreset(
        strategies="fedavg,fedprox-mu0=fedprox,fedprox",
        settings=(("fedprox-mu0", "proximal-mu=0"), ("fedprox", "proximal-mu=1")),
        common=(
            "dataset=synthetic synthetic-alpha=1 synthetic-beta=1 partitioner=natural model=logreg "
            "local-epochs=20 batch-size=10 learning-rate=0.01 straggler-fraction=0.9 "
            "fraction-train=0.34 fraction-evaluate=0 validation-fraction=0 min-train-nodes=1"
        ),
        nodes=30,
        rounds=200,
        seeds=PAPER_SEEDS,
        target=0.6,
        centralized_epochs=20,
    ),
    "distillation": PaperPreset(
        strategies="fedavg,feddf,fd,fedmd,fedmd-lr0.01=fedmd",
        settings=(("fedmd-lr0.01", "learning-rate=0.01"),),
        common="model=2nn partitioner=dirichlet dirichlet-alpha=0.1 fraction-evaluate=0",
        nodes=10,
        rounds=20,
        seeds=PAPER_SEEDS,
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
        seeds=PAPER_SEEDS,
        target=0.85,
        centralized_epochs=20,
    ),
    "cifar10": _cifar10(alpha=1, target=0.7),
    "cifar10-alpha0.1": _cifar10(alpha=0.1, target=0.5),
    "femnist": PaperPreset(
        strategies="fedavg,fedprox",
        settings=(("fedprox", "proximal-mu=0.01"),),
        common=(
            "dataset=flwrlabs/femnist label-column=character partitioner=natural partition-by=writer_id model=cnn "
            "local-epochs=1 batch-size=10 learning-rate=0.05 fraction-train=0.1 fraction-evaluate=0 "
            "min-train-nodes=2"
        ),
        nodes=100,
        rounds=50,
        seeds=PAPER_SEEDS,
        target=0.7,
        centralized_epochs=10,
    ),
    "regression": PaperPreset(
        strategies="fedavg",
        settings=(),
        common=(
            "task=regression dataset=diabetes model=mlp hidden-sizes=5 partitioner=iid local-epochs=2 "
            "batch-size=8 learning-rate=0.05"
        ),
        nodes=10,
        rounds=30,
        seeds=PAPER_SEEDS,
        target=0.4,
        centralized_epochs=30,
    ),
    "robustness": PaperPreset(
        strategies=",".join(f"{label}=fedavg" for label, _ in ROBUSTNESS_RUNS),
        settings=tuple((label, settings) for label, settings in ROBUSTNESS_RUNS if settings),
        common=(
            "model=2nn partitioner=dirichlet dirichlet-alpha=0.5 fraction-evaluate=0 min-train-nodes=7 "
            "min-available-nodes=7"
        ),
        nodes=10,
        rounds=20,
        seeds=PAPER_SEEDS,
        target=0.85,
        centralized_epochs=10,
    ),
    "noniid-dirichlet": _niid_bench("partitioner=dirichlet dirichlet-alpha=0.5"),
    "noniid-two-classes": _niid_bench("partitioner=shard classes-per-node=2"),
}
