"""Differential privacy: the mechanism's math, secret noise, sampling, pinned epsilons, the budget, adaptive clipping.

The epsilon values are pinned twice: against the numbers of the research brief
(`/work/research/dp-tracking-perf.md` A.1, computed with dp-accounting 0.6.0) and
against an oracle in this file that computes them from dp-accounting directly, as
the brief does; where its assumptions hold, also against Flower's own accountant.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import random
import re
from pathlib import Path
from typing import Any

import dp_accounting
import numpy as np
import pytest
from dp_accounting import dp_event
from dp_accounting.rdp import RdpAccountant
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.serverapp import GaussianPrivacyEvent, NeighboringRelation, PrivacyConfig, SamplingMethod
from flwr.serverapp import RdpAccountant as FlowerRdpAccountant
from flwr.serverapp.strategy.strategy_utils import sample_nodes
from flwr.supercore.task_identity import TaskIdentity

import fedapp.config as config_names
import strategies.accounting
from fedapp.client_app import app as client_app
from fedapp.config import ConfigError, RunConfig
from fedapp.federation import Federation
from fedapp.models import build_model
from fedapp.nodes import NodeDirectory
from fedapp.outputs import RunOutputs
from fedapp.privacy import client_sampler
from fedapp.strategy_factory import build_strategy
from sim.run import RunRequest
from strategies.accounting import PrivacyLedger, RoundEvent, epsilon
from strategies.adaptive_clipping import next_clipping_norm, noisy_unclipped_fraction, update_noise_multiplier
from strategies.aggregation import global_norm
from strategies.arrays import to_numpy
from strategies.dp import DP_MODES, DifferentialPrivacy, PrivacySettings
from strategies.fedavg import FedAvg
from strategies.noise import NOISE_SOURCES, SECRET, SEEDED_INSECURE, secret_noise, seeded_noise
from strategies.privacy import clip_update, noise_std, private_average
from strategies.protocol import ARRAYS, CONFIG, LEARNING_RATE, LOCAL_EPOCHS, LOCAL_STEPS, METRICS, SERVER_ROUND
from strategies.sampling import (
    FIXED,
    POISSON,
    SAMPLING_METHODS,
    ClientSampler,
    secret_sampling,
    seeded_sampling,
)
from strategies.seeding import derive_seed
from tests.helpers import APP_DIR, NUM_NODES, FakeGrid, answer, initial, play_round, run_config

DELTA = 1e-5
logging.getLogger("absl").setLevel(logging.ERROR)  # dp-accounting: "failed to converge ... Excluding this order"


def privacy(
    mode: str = "server-fixed",
    sampling: str = FIXED,
    fraction: float = 1.0,
    noise_multiplier: float = 1.0,
    noise: Any = None,
    **settings: Any,
) -> DifferentialPrivacy:
    """A DP mechanism with C = 1 over a seeded sampler (secret noise unless `noise` says otherwise)."""
    sampler = ClientSampler(sampling, fraction, 1, seeded_sampling(0))
    return DifferentialPrivacy(PrivacySettings(mode, 1.0, noise_multiplier, DELTA, **settings), sampler, noise)


# --- The mechanism: clip, fixed denominator, noise --------------------------------


def test_clip_update_bounds_the_norm_and_keeps_small_updates() -> None:
    big = {"a": np.full((10,), 3.0, dtype=np.float32), "b": np.full((3, 3), -2.0, dtype=np.float32)}
    clipped = clip_update(big, 1.5)
    assert global_norm(clipped) == pytest.approx(1.5, rel=1e-6)
    np.testing.assert_allclose(clipped["a"] / big["a"], clipped["b"][0, 0] / big["b"][0, 0], rtol=1e-6)
    small = {"a": np.array([0.1, 0.2])}
    assert clip_update(small, 1.5) is small


def test_private_average_clips_every_update_and_uses_a_fixed_denominator() -> None:
    updates = [{"w": np.full(4, 10.0 * (i + 1))} for i in range(3)]
    like = {"w": np.zeros(4)}
    average = private_average(updates, like, 5, clipping_norm=1.0, noise_multiplier=0.0, rng=np.random.default_rng(0))
    np.testing.assert_allclose(average["w"], np.full(4, 3 * 0.5 / 5))
    poisson = private_average(updates, like, 2.5, clipping_norm=1.0, noise_multiplier=0.0, rng=np.random.default_rng(0))
    np.testing.assert_allclose(poisson["w"], np.full(4, 3 * 0.5 / 2.5))  # q * N = 2.5 expected clients


def test_noise_std_matches_multiplier_times_norm_over_the_denominator() -> None:
    zero = [{"w": np.zeros(400_000)} for _ in range(4)]
    average = private_average(zero, zero[0], 8, clipping_norm=2.0, noise_multiplier=1.3, rng=np.random.default_rng(0))
    expected = noise_std(1.3, 2.0, 8)
    assert expected == pytest.approx(0.325)
    assert np.std(average["w"]) == pytest.approx(expected, rel=0.01)
    assert abs(np.mean(average["w"])) < 3 * expected / np.sqrt(400_000)


def test_a_private_average_of_no_update_is_the_noise_alone() -> None:
    like = {"w": np.zeros((300, 300), dtype=np.float32)}
    average = private_average([], like, 4.0, clipping_norm=2.0, noise_multiplier=1.0, rng=np.random.default_rng(1))
    assert average["w"].dtype == np.float32 and average["w"].shape == (300, 300)
    assert np.std(average["w"]) == pytest.approx(0.5, rel=0.02)


def test_client_side_clipping_clips_every_update_on_the_client(
    message_identity: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = run_config(dp="client-fixed", learning_rate=0.1)
    start = to_numpy(initial())
    train_config = ConfigRecord({SERVER_ROUND: 1, LEARNING_RATE: 0.1, LOCAL_EPOCHS: 1, "clipping_norm": 0.25})
    messages = [
        Message(RecordDict({ARRAYS: initial(), CONFIG: train_config}), dst_node_id=n, message_type=MessageType.TRAIN)
        for n in (1, 2, 3)
    ]
    for reply in answer(messages, config, monkeypatch):
        update = {k: v - start[k] for k, v in to_numpy(reply.content[ARRAYS]).items()}
        assert global_norm(update) <= 0.25 * (1 + 1e-5)


BATCH_NORM_MODELS = ("cnn-bn", "resnet8")
BN_PARTITIONS = 100  # node 1 trains on 1/100 of the MNIST pool: a few real SGD steps, fast on a CPU


def batch_norm_initial(model: str) -> ArrayRecord:
    return ArrayRecord(build_model(model, (1, 28, 28), 10, seed=0).state_dict())


def parameter_update_norm(after: dict[str, np.ndarray], before: dict[str, np.ndarray]) -> float:
    """||after - before|| over the floating-point arrays, computed here, independently of `global_norm`."""
    return math.sqrt(
        sum(
            float(np.sum((after[k].astype(np.float64) - before[k]) ** 2)) for k in before if before[k].dtype.kind == "f"
        )
    )


def counters(arrays: dict[str, np.ndarray]) -> dict[str, int]:
    return {key: int(value) for key, value in arrays.items() if key.endswith("num_batches_tracked")}


@pytest.mark.parametrize("model", BATCH_NORM_MODELS)
def test_server_clipping_bounds_the_parameters_of_real_batch_norm_updates(
    model: str, message_identity: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real local round of a BatchNorm model through the DP strategy: its parameters are clipped to C.

    Without noise and with one expected client the released average is the clipped
    update itself. BatchNorm's step counters (+1 per local step and layer) must neither
    be counted in the norm (it would shrink the weights well below C) nor be released.
    """
    config = run_config(dp="server-fixed", model=model, learning_rate=0.1)
    start = batch_norm_initial(model)
    before = to_numpy(start)
    strategy = FedAvg(privacy=privacy(noise_multiplier=0.0), min_train_nodes=1, min_available_nodes=1)
    _, released = play_round(strategy, config, monkeypatch, start, num_nodes=1, partitions=BN_PARTITIONS)
    after = to_numpy(released)
    received = strategy.round_metrics()["max_received_update_norm"]
    assert received > 1.0, "the update must be clipped for this test to mean anything"
    assert parameter_update_norm(after, before) == pytest.approx(1.0, rel=1e-4), "clipped to C = 1, not below"
    assert counters(after) == counters(before), "step counters are not released under DP"
    assert counters(after) and all(value == 0 for value in counters(after).values())
    noised = FedAvg(privacy=privacy(noise_multiplier=1.0), min_train_nodes=1, min_available_nodes=1)
    _, released = play_round(noised, config, monkeypatch, start, num_nodes=1, partitions=BN_PARTITIONS)
    assert noised.round_metrics()["max_received_update_norm"] == pytest.approx(received, rel=1e-6)
    assert counters(to_numpy(released)) == counters(before), "no noise on the counters"


@pytest.mark.parametrize("model", BATCH_NORM_MODELS)
def test_client_clipping_bounds_the_parameters_of_real_batch_norm_updates(
    model: str, message_identity: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dp = client-fixed, BatchNorm model: the client clips its parameters to C and sends its counters as they are."""
    config = run_config(dp="client-fixed", model=model, learning_rate=0.1)
    start = batch_norm_initial(model)
    before = to_numpy(start)
    train_config = ConfigRecord({SERVER_ROUND: 1, LEARNING_RATE: 0.1, LOCAL_EPOCHS: 1, "clipping_norm": 0.25})
    message = Message(RecordDict({ARRAYS: start, CONFIG: train_config}), dst_node_id=1, message_type=MessageType.TRAIN)
    (reply,) = answer([message], config, monkeypatch, num_nodes=BN_PARTITIONS)
    after = to_numpy(reply.content[ARRAYS])
    assert parameter_update_norm(after, before) == pytest.approx(0.25, rel=1e-4)
    steps = int(reply.content[METRICS][LOCAL_STEPS])
    assert counters(after) == dict.fromkeys(counters(before), steps), "counters travel unclipped"
    assert all(after[key].dtype == before[key].dtype for key in before)


# --- Secret noise --------------------------------------------------------------------


def test_noise_is_secret_by_default_and_repeats_only_when_seeded() -> None:
    assert privacy().noise.name == SECRET and privacy().noise.private
    first, second = secret_noise(), secret_noise()
    assert first.generator(1).normal(size=4).tolist() != second.generator(1).normal(size=4).tolist()
    assert first.generator(1).normal(size=4).tolist() != first.generator(1).normal(size=4).tolist()
    seeded = seeded_noise(7)
    assert seeded.name == SEEDED_INSECURE and not seeded.private
    assert seeded.generator(3).normal(size=4).tolist() == seeded_noise(7).generator(3).normal(size=4).tolist()
    assert seeded.generator(3).normal(size=4).tolist() != seeded.generator(4).normal(size=4).tolist()


def _draw(source: Any, queue: Any) -> None:
    queue.put(source.generator(1).normal())


def test_secret_noise_differs_in_processes_forked_from_one_parent() -> None:
    """A generator made before a fork repeats its draws in every child; ours is made when the noise is drawn."""
    context = multiprocessing.get_context("fork")
    draws = []
    for source in (secret_noise(), seeded_noise(0)):
        queue = context.Queue()
        children = [context.Process(target=_draw, args=(source, queue)) for _ in range(2)]
        for child in children:
            child.start()
        draws.append([queue.get(timeout=60) for _ in children])
        for child in children:
            child.join()
    secret, seeded = draws
    assert secret[0] != secret[1]
    assert seeded[0] == seeded[1]


def test_same_inputs_give_different_private_averages_unless_the_noise_is_seeded() -> None:
    updates = [{"w": np.ones(50, dtype=np.float32) * 0.1}]
    like = {"w": np.zeros(50, dtype=np.float32)}
    runs = [privacy().release(updates, like, population=1, server_round=1)[0]["w"] for _ in range(2)]
    assert not np.array_equal(*runs)
    seeded = [
        privacy(noise=seeded_noise(0)).release(updates, like, population=1, server_round=1)[0]["w"] for _ in range(2)
    ]
    np.testing.assert_array_equal(*seeded)


# --- Client sampling ------------------------------------------------------------------


def test_fixed_sampling_draws_the_nodes_flowers_fedavg_drew() -> None:
    """Same seed, same nodes as before sampling moved into our strategy (Flower's `random.sample` seeded per round)."""
    nodes = list(range(100, 130))
    sampler = ClientSampler(FIXED, 0.2, 2, seeded_sampling(5))
    for server_round in (1, 2, 7):
        random.seed(derive_seed(5, "sample", "train", server_round))
        flowers, _ = sample_nodes(FakeGrid(nodes), 2, 6)
        assert sampler.sample(nodes, server_round) == flowers
    assert ClientSampler(FIXED, 0.01, 3, seeded_sampling(0)).sample_size(30) == 3, "at least min-train-nodes"


def test_poisson_sampling_takes_each_node_with_probability_q_and_sometimes_none() -> None:
    nodes = list(range(20))
    sampler = ClientSampler(POISSON, 0.1, 1, seeded_sampling(0))
    samples = [sampler.sample(nodes, server_round) for server_round in range(4000)]
    sizes = np.array([len(s) for s in samples])
    assert sizes.mean() == pytest.approx(2.0, abs=0.1)
    assert np.mean(sizes == 0) == pytest.approx(0.9**20, abs=0.02), "P(nobody) = (1 - q)^N"
    assert sizes.max() > 5
    counts = np.bincount(np.concatenate([np.array(s, dtype=int) for s in samples]), minlength=20) / len(samples)
    assert np.all(np.abs(counts - 0.1) < 0.02)
    assert sampler.expected_clients(20) == pytest.approx(2.0)
    assert samples[3] == sampler.sample(nodes, 3), "seeded: the same draws in every run"


def test_secret_sampling_does_not_follow_the_seed() -> None:
    nodes = list(range(200))
    secret = ClientSampler(FIXED, 0.1, 1, secret_sampling())
    assert secret.sample(nodes, 1) != secret.sample(nodes, 1)


def test_with_dp_among_nodes_with_their_own_data_the_sample_is_secret() -> None:
    nodes = list(range(200))

    def sampler(own_data_nodes: Any, **changes: Any) -> ClientSampler:
        config = RunConfig.from_mapping(run_config(fraction_train=0.1, **changes))
        return client_sampler(config, own_data_nodes)

    def repeats(chosen: ClientSampler) -> bool:
        return chosen.sample(nodes, 1) == chosen.sample(nodes, 1)

    assert repeats(sampler(lambda: 0, dp="server-fixed")), "simulated nodes: seeded, as experiments need"
    assert not repeats(sampler(lambda: 3, dp="server-fixed")), "a deployment: secret"
    assert not repeats(sampler(None, dp="server-fixed")), "nodes unknown (a plain Flower ServerApp): secret"
    assert repeats(sampler(lambda: 3)), "no DP: seeded"
    assert sampler(lambda: 0, dp="server-fixed").sample(nodes, 2) == sampler(lambda: 0).sample(nodes, 2)


def test_a_private_poisson_round_without_clients_still_releases_and_accounts(message_identity: None) -> None:
    mechanism = privacy(sampling=POISSON, fraction=0.01)
    strategy = FedAvg(privacy=mechanism, min_train_nodes=1, min_available_nodes=1)
    train_config = ConfigRecord({SERVER_ROUND: 1, LEARNING_RATE: 0.1, LOCAL_EPOCHS: 1})
    empty_round = next(r for r in range(1, 100) if not mechanism.sampler.sample(list(range(1, 4)), r))
    messages = list(strategy.configure_train(empty_round, initial(), train_config, FakeGrid([1, 2, 3])))
    assert messages == []
    arrays, metrics = strategy.aggregate_train(empty_round, [])
    assert arrays is not None and metrics is None
    moved = {key: value - to_numpy(initial())[key] for key, value in to_numpy(arrays).items()}
    assert global_norm(moved) > 0, "noise on the empty sum, divided by q * N"
    assert strategy.round_metrics()["dp_expected_clients"] == pytest.approx(0.03)
    assert mechanism.ledger.rounds == 1 and strategy.round_metrics()["epsilon"] > 0
    plain = FedAvg(sampler=ClientSampler(POISSON, 0.01, 1, seeded_sampling(0)), min_train_nodes=1)
    plain.configure_train(empty_round, initial(), train_config, FakeGrid([1, 2, 3]))
    assert plain.aggregate_train(empty_round, []) == (None, None), "without DP nothing is released"


def test_a_private_strategy_accounts_every_round_it_plays(
    message_identity: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = run_config(dp="server-fixed")
    strategy = FedAvg(privacy=privacy(), min_train_nodes=1, min_available_nodes=1)
    play_round(strategy, config, monkeypatch, initial())
    first = strategy.round_metrics()["epsilon"]
    play_round(strategy, config, monkeypatch, initial())
    assert 0 < first < strategy.round_metrics()["epsilon"] < float("inf")
    assert strategy.round_metrics()["dp_noise_std"] == pytest.approx(1.0 / NUM_NODES)
    assert strategy.run_summary()["privacy"]["neighbouring_relation"] == "replace-one"


# --- Pinned epsilon ---------------------------------------------------------------------


def oracle_epsilon(event: dp_event.DpEvent, rounds: int, relation: dp_accounting.NeighboringRelation) -> float:
    """The research brief's oracle: dp-accounting's RDP accountant, composed directly (not through our code)."""
    accountant = RdpAccountant(neighboring_relation=relation)
    accountant.compose(event, rounds)
    return accountant.get_epsilon(DELTA)


ADD_REMOVE = dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE
REPLACE = dp_accounting.NeighboringRelation.REPLACE_ONE


def _poisson(q: float, z: float) -> dp_event.DpEvent:
    """One client moves the clipped sum by <= C; noise z*C on the sum."""
    return dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(z))


def _fixed_size(n: int, m: int, z: float) -> dp_event.DpEvent:
    """Replacing one client moves the sum by <= 2C: multiplier z/2 (a plain Gaussian when m = n)."""
    gaussian = dp_event.GaussianDpEvent(z / 2)
    return gaussian if m == n else dp_event.SampledWithoutReplacementDpEvent(n, m, gaussian)


# (ours, the oracle's event, relation, rounds, the brief's value)
PINNED = [
    pytest.param(RoundEvent.poisson(0.1, 1.0), _poisson(0.1, 1.0), ADD_REMOVE, 100, 7.9039, id="poisson-q0.1-z1-T100"),
    pytest.param(RoundEvent.fixed(10, 100, 1.0), _fixed_size(100, 10, 1.0), REPLACE, 100, 83.9369, id="fixed-10of100"),
    pytest.param(RoundEvent.poisson(1.0, 1.0), _poisson(1.0, 1.0), ADD_REMOVE, 100, 96.1163, id="all-add-remove"),
    pytest.param(RoundEvent.fixed(10, 10, 1.0), _fixed_size(10, 10, 1.0), REPLACE, 100, 294.8613, id="all-replace"),
    pytest.param(
        RoundEvent.poisson(0.01, 1.1), _poisson(0.01, 1.1), ADD_REMOVE, 1000, 1.7118, id="poisson-q0.01-T1000"
    ),
    pytest.param(RoundEvent.poisson(0.1, 0.5), _poisson(0.1, 0.5), ADD_REMOVE, 10, 14.4183, id="poisson-z0.5-T10"),
    pytest.param(RoundEvent.poisson(0.1, 1.0), _poisson(0.1, 1.0), ADD_REMOVE, 1, 2.1330, id="poisson-T1"),
    pytest.param(RoundEvent.fixed(10, 100, 2.0), _fixed_size(100, 10, 2.0), REPLACE, 100, 14.0538, id="fixed-z2"),
]


@pytest.mark.parametrize(("ours", "oracle_event", "relation", "rounds", "pinned"), PINNED)
def test_epsilon_matches_the_pinned_and_the_independently_computed_value(
    ours: RoundEvent, oracle_event: dp_event.DpEvent, relation: Any, rounds: int, pinned: float
) -> None:
    ledger = PrivacyLedger(DELTA, ours.sampling)
    for _ in range(rounds):
        ledger.record(ours)
    assert ledger.spent() == pytest.approx(pinned, abs=1e-4)
    assert ledger.spent() == pytest.approx(oracle_epsilon(oracle_event, rounds, relation), rel=1e-9)
    assert ledger.neighbouring_relation == ("add-or-remove-one" if relation is ADD_REMOVE else "replace-one")


def _exact_gaussian_epsilon(mu: float) -> float:
    """Exact epsilon of mu-GDP at DELTA: solve delta(eps) = Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2)."""

    def phi(x: float) -> float:
        return 0.5 * math.erfc(-x / math.sqrt(2))

    def delta(eps: float) -> float:
        return phi(-eps / mu + mu / 2) - math.exp(eps + math.log(phi(-eps / mu - mu / 2)))

    low, high = 0.0, mu * mu  # delta(mu^2) < 1e-5 for the mu used here
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (middle, high) if delta(middle) > DELTA else (low, middle)
    return high


def test_full_participation_epsilon_is_an_upper_bound_close_to_the_exact_value() -> None:
    """T Gaussian rounds are exactly mu-GDP, mu = sqrt(T) * sensitivity / sigma: RDP may only overestimate."""
    add_remove = epsilon([RoundEvent.poisson(1.0, 1.0)] * 100, DELTA)
    replace = epsilon([RoundEvent.fixed(10, 10, 1.0)] * 100, DELTA)
    exact_add_remove, exact_replace = _exact_gaussian_epsilon(10.0), _exact_gaussian_epsilon(20.0)
    assert exact_add_remove == pytest.approx(91.8173, abs=1e-3) and exact_replace == pytest.approx(284.3918, abs=1e-3)
    assert exact_add_remove < add_remove < 1.05 * exact_add_remove
    assert exact_replace < replace < 1.05 * exact_replace


def _flower(sampling: SamplingMethod, relation: NeighboringRelation, event: GaussianPrivacyEvent, rounds: int) -> float:
    accountant = FlowerRdpAccountant(PrivacyConfig(DELTA, event.population_size, relation, sampling))
    accountant.compose(event, rounds)
    return accountant.get_epsilon(DELTA)


def test_epsilon_agrees_with_flowers_accountant_where_its_assumptions_hold() -> None:
    """Flower's `PrivacyAccountant` (flwr 1.42, used by its fixed-clipping wrappers).

    - NO_AMPLIFICATION + add/remove-one (all its wrappers accept): a plain Gaussian of
      multiplier z per round, whatever the sample, i.e. as if every client took part in
      every round. Ours for full participation with add/remove neighbours (Poisson, q = 1).
    - POISSON + add/remove-one (its standalone accountant): q = sample_size / population.
    - WITHOUT_REPLACEMENT + replace-one: Flower takes the event's multiplier as relative
      to the replace-one sensitivity (2C), so it needs z / 2 to describe our mechanism.
    """
    add_remove, replace = NeighboringRelation.ADD_OR_REMOVE_ONE, NeighboringRelation.REPLACE_ONE
    flower_full = _flower(SamplingMethod.NO_AMPLIFICATION, add_remove, GaussianPrivacyEvent(1.0, 100, 100), 100)
    assert epsilon([RoundEvent.poisson(1.0, 1.0)] * 100, DELTA) == pytest.approx(flower_full, rel=1e-9)
    flower_poisson = _flower(SamplingMethod.POISSON, add_remove, GaussianPrivacyEvent(1.0, 10, 100), 100)
    assert epsilon([RoundEvent.poisson(0.1, 1.0)] * 100, DELTA) == pytest.approx(flower_poisson, rel=1e-9)
    flower_wor = _flower(SamplingMethod.WITHOUT_REPLACEMENT, replace, GaussianPrivacyEvent(0.5, 10, 100), 100)
    assert epsilon([RoundEvent.fixed(10, 100, 1.0)] * 100, DELTA) == pytest.approx(flower_wor, rel=1e-9)


def test_the_ledger_computes_each_distinct_round_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rounds add their RDP curves: checking the budget in round T costs no more than in round 1."""
    computed: list[RoundEvent] = []
    original = strategies.accounting.round_rdp

    def counting(event: RoundEvent) -> Any:
        computed.append(event)
        return original(event)

    monkeypatch.setattr(strategies.accounting, "round_rdp", counting)
    ledger = PrivacyLedger(DELTA, POISSON)
    event = RoundEvent.poisson(0.1, 1.0)
    for _ in range(300):
        ledger.epsilon_with(event)
        ledger.record(event)
    ledger.record(RoundEvent.poisson(0.2, 1.0))
    assert computed == [event, RoundEvent.poisson(0.2, 1.0)]
    restored = PrivacyLedger(DELTA, POISSON)
    restored.load_state_dict(ledger.state_dict())
    assert restored.spent() == ledger.spent() and restored.rounds == 301


# --- The budget ------------------------------------------------------------------------


def test_the_budget_stops_before_the_round_that_would_exceed_it() -> None:
    """Poisson q = 0.1, z = 1: 102 rounds cost 7.9753, the 103rd would cost 8.0111 > 8."""
    mechanism = privacy(sampling=POISSON, fraction=0.1, max_epsilon=8.0)
    for server_round in range(1, 103):
        assert mechanism.stop_reason(server_round, 50) is None
        mechanism.ledger.record(mechanism.round_event(50))
    assert mechanism.ledger.spent() == pytest.approx(7.9753, abs=1e-4)
    reason = mechanism.stop_reason(103, 50)
    assert reason is not None and "round 103 would raise epsilon from 7.9753 to 8.0111 > dp-max-epsilon 8" in reason
    assert privacy(noise_multiplier=0.0, max_epsilon=100.0).stop_reason(1, 5) is not None, "no noise: epsilon is inf"
    assert privacy().stop_reason(1, 5) is None, "no budget"


def test_the_budget_stops_where_flowers_accountant_would_refuse() -> None:
    """Full participation, add/remove, z = 1, budget 10: Flower's `would_exceed` turns true at round 4."""
    config = PrivacyConfig(DELTA, 10, NeighboringRelation.ADD_OR_REMOVE_ONE, SamplingMethod.NO_AMPLIFICATION, 10.0)
    flower, event = FlowerRdpAccountant(config), GaussianPrivacyEvent(1.0, 10, 10)
    mechanism = privacy(sampling=POISSON, fraction=1.0, max_epsilon=10.0)
    for server_round in range(1, 6):
        assert (mechanism.stop_reason(server_round, 10) is not None) == flower.would_exceed(event)
        if not flower.would_exceed(event):
            flower.compose(event)
            mechanism.ledger.record(mechanism.round_event(10))
    assert mechanism.ledger.rounds == 3


# --- Adaptive clipping (Andrew et al. 2021) -----------------------------------------------


def test_the_update_noise_leaves_the_round_its_noise_multiplier() -> None:
    assert update_noise_multiplier(1.0, 1.0) == pytest.approx(2 / math.sqrt(3))
    assert update_noise_multiplier(0.0, 0.0) == 0.0
    with pytest.raises(ValueError, match="z < 2 sigma_b"):
        update_noise_multiplier(2.0, 1.0)
    z, z_delta, sigma_b = 1.0, update_noise_multiplier(1.0, 1.0), 1.0
    assert (z_delta**-2 + (2 * sigma_b) ** -2) ** -0.5 == pytest.approx(z)


def test_adaptive_clipping_is_accounted_with_the_users_noise_multiplier() -> None:
    """The count query's noise is part of z: accounting with z_delta alone would under-report (6.06 vs 7.90)."""
    adaptive = privacy("server-adaptive", sampling=POISSON, fraction=0.1)
    for _ in range(100):
        adaptive.ledger.record(adaptive.round_event(200))
    assert adaptive.ledger.spent() == pytest.approx(7.9039, abs=1e-4)
    z_delta = adaptive.settings.update_noise(expected_clients=20)
    assert z_delta == pytest.approx(1.1547, abs=1e-4)
    assert epsilon([RoundEvent.poisson(0.1, z_delta)] * 100, DELTA) == pytest.approx(6.0643, abs=1e-4)


def test_the_clipping_norm_moves_to_the_target_quantile_of_update_norms() -> None:
    """From C = 0.1, 20 clients with log-normal norms (median 0.916), the paper's rule reaches the median.

    Flower 1.41/1.42's wrappers count clipped updates in this rule and drive C to 0.0018 instead.
    """
    rng = np.random.default_rng(0)
    clipping_norm = 0.1
    for _ in range(40):
        norms = rng.lognormal(math.log(0.916), 0.5, size=20)
        fraction = noisy_unclipped_fraction(norms, clipping_norm, 20, 1.0, rng)
        clipping_norm = next_clipping_norm(clipping_norm, fraction, 0.5, 0.2)
    assert clipping_norm == pytest.approx(0.916, rel=0.15)
    assert next_clipping_norm(1.0, 1.0, 0.5, 0.2) < 1.0 < next_clipping_norm(1.0, 0.0, 0.5, 0.2)


def test_adaptive_release_clips_and_noises_at_the_norm_it_started_the_round_with() -> None:
    mechanism = privacy("server-adaptive", noise_multiplier=0.1, noise=seeded_noise(0), count_stddev=0.1)
    like = {"w": np.zeros(200_000)}
    updates = [{"w": np.full(200_000, 0.01)} for _ in range(4)]  # norm 4.47 each: all clipped at C = 1
    average, figures = mechanism.release(updates, like, population=4, server_round=1)
    z_delta = update_noise_multiplier(0.1, 0.1)
    assert z_delta == pytest.approx(0.1 / math.sqrt(0.75))
    assert figures["dp_clipping_norm"] == 1.0 and figures["dp_noise_std"] == pytest.approx(z_delta / 4)
    assert np.std(average["w"]) == pytest.approx(z_delta / 4, rel=0.01)
    assert np.mean(average["w"]) == pytest.approx(1.0 / math.sqrt(200_000), rel=0.1), "each clipped to norm 1"
    assert figures["dp_next_clipping_norm"] == mechanism.clipping_norm > 1.0, "all clipped: C grows"
    assert mechanism.ledger.counts == {RoundEvent.fixed(4, 4, 0.1): 1}


# --- Refusals and records -----------------------------------------------------------------


def test_the_config_offers_what_the_strategies_implement() -> None:
    assert ("none", *DP_MODES) == config_names.DP_MODES
    assert config_names.DP_NOISE_SOURCES == NOISE_SOURCES
    assert config_names.CLIENT_SAMPLINGS == SAMPLING_METHODS


def test_config_refuses_what_dp_cannot_honour() -> None:
    def config(**changes: Any) -> RunConfig:
        return RunConfig.from_mapping(run_config(**changes))

    with pytest.raises(ConfigError, match="'client-sampling' = 'poisson' is not allowed; allowed: 'fixed' with"):
        config(strategy="feddistill", client_sampling="poisson")
    with pytest.raises(
        ConfigError, match="'dp' = 'server-fixed' is not allowed; allowed: 'none' with strategy 'feddf'"
    ):
        config(strategy="feddf", dp="server-fixed")
    with pytest.raises(ConfigError, match="'dp-noise' = 'seeded' is not allowed; allowed: secret, seeded-insecure"):
        config(dp="server-fixed", dp_noise="seeded")
    with pytest.raises(ConfigError, match=re.escape("'dp-count-noise-stddev' = 0.5 is not allowed")):
        config(dp="server-adaptive", dp_noise_multiplier=1.0, dp_count_noise_stddev=0.5)
    with pytest.raises(ConfigError, match=re.escape("'dp-max-epsilon' = -1.0 is not allowed")):
        config(dp_max_epsilon=-1.0)
    assert config(dp="server-adaptive", client_sampling="poisson", dp_max_epsilon=8.0).dp_max_epsilon == 8.0


def test_adaptive_clipping_with_too_few_expected_clients_is_refused_before_the_run() -> None:
    """sigma_b = m / 20 must exceed z / 2: 10 nodes at q = 0.5 give 5 clients, sigma_b 0.25, so z < 0.5."""
    extra = {"model": "logreg", "dp": "server-adaptive", "fraction-train": 0.5, "dp-noise-multiplier": 1.0}
    with pytest.raises(ConfigError, match=re.escape("'dp-noise-multiplier' = 1.0 is too large for adaptive clipping")):
        RunRequest.build(APP_DIR, [], nodes=10, extra=extra)
    assert RunRequest.build(APP_DIR, [], nodes=100, extra=extra).config.dp == "server-adaptive"


def test_a_node_with_its_own_data_refuses_to_train_with_seeded_noise(
    message_identity: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = run_config(dp="server-fixed", dp_noise="seeded-insecure")
    train_config = ConfigRecord({SERVER_ROUND: 1, LEARNING_RATE: 0.1, LOCAL_EPOCHS: 1})
    message = Message(
        RecordDict({ARRAYS: initial(), CONFIG: train_config}), dst_node_id=1, message_type=MessageType.TRAIN
    )
    monkeypatch.setattr(TaskIdentity, "_node_id", 1)
    refusal = re.escape("run-config key 'dp-noise' = 'seeded-insecure' is not allowed with nodes that train on their")
    with pytest.raises(ConfigError, match=refusal):  # Flower's runtime turns it into the node's error reply
        client_app(message, Context(1, 1, {"data-path": str(tmp_path)}, RecordDict(), config))


class _OwnDataNodes(NodeDirectory):
    """Three connected nodes that described themselves as holding their own data (partitions 0)."""

    def __init__(self) -> None:
        super().__init__(FakeGrid([1, 2, 3]), timeout=1.0)

    def wait_for_nodes(self, minimum: int, settle_seconds: float = 1.0) -> None: ...

    def online(self) -> list[int]:
        return [1, 2, 3]

    def num_partitions(self) -> list[int]:
        return []

    def own_data_nodes(self) -> int:
        return 3


def test_the_federation_refuses_seeded_noise_among_nodes_with_their_own_data(tmp_path: Path) -> None:
    """The check a deployment's ServerApp runs (`Federation.run`), before any round, with a one-line reason."""
    config = RunConfig.from_mapping(run_config(dp="server-fixed", dp_noise="seeded-insecure"))
    federation = Federation(
        FakeGrid([1, 2, 3]),
        _OwnDataNodes(),
        build_strategy(config),
        config,
        lambda arrays: (0.0, 0.0),  # type: ignore[arg-type]
        RunOutputs(tmp_path, {}),
    )
    with pytest.raises(ConfigError, match=r"^run-config key 'dp-noise' = 'seeded-insecure' is not allowed with nodes"):
        federation.run(ArrayRecord(initial().to_torch_state_dict()))
    assert not (tmp_path / "metrics.json").exists()
