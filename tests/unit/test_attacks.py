"""Attacks for robustness experiments (`fedapp/attacks.py`): the math on hand-made arrays, who attacks, the config,
and real ClientApp replies that carry the attack."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
import torch
from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict

from fedapp import attacks
from fedapp.client_app import Node, _shard_models
from fedapp.config import ConfigError, RunConfig
from strategies.arrays import to_numpy
from strategies.protocol import ARRAYS, CONFIG, LEARNING_RATE, LOCAL_EPOCHS, METRICS, NUM_EXAMPLES, SERVER_ROUND
from tests.helpers import answer, initial, run_config

SENT = {"w": np.array([1.0, 2.0, 3.0], np.float32), "steps": np.array(5, np.int64)}
HONEST = {"w": np.array([2.0, 2.0, 1.0], np.float32), "steps": np.array(9, np.int64)}  # update (1, 0, -2)


# --- The attacks' math ---------------------------------------------------------------


def test_sign_flip_reverses_and_scales_the_update_and_keeps_counters() -> None:
    flipped = attacks.sign_flip(HONEST, SENT, 2.0)
    np.testing.assert_array_equal(flipped["w"], [-1.0, 2.0, 7.0])  # sent - 2 x (1, 0, -2)
    assert flipped["w"].dtype == np.float32
    assert flipped["steps"] == 9, "integer counters are not parameters: the honest value travels"
    np.testing.assert_array_equal(HONEST["w"], [2.0, 2.0, 1.0]), "the inputs are not changed"


def test_scale_multiplies_the_update() -> None:
    np.testing.assert_array_equal(attacks.scale_update(HONEST, SENT, 5.0)["w"], [6.0, 2.0, -7.0])


def test_gaussian_replaces_the_update_by_seeded_noise_of_k_times_its_rms() -> None:
    sent = {"w": np.zeros(40_000, np.float32)}
    honest = {"w": np.full(40_000, 0.5, np.float32)}  # rms 0.5
    noised = attacks.gaussian_update(honest, sent, 3.0, attacks.attack_rng(0, 1, "partition-00001"))
    assert np.std(noised["w"]) == pytest.approx(1.5, rel=0.02)
    assert abs(float(np.mean(noised["w"]))) < 0.05, "the honest direction is gone"
    again = attacks.gaussian_update(honest, sent, 3.0, attacks.attack_rng(0, 1, "partition-00001"))
    np.testing.assert_array_equal(noised["w"], again["w"])
    other_round = attacks.gaussian_update(honest, sent, 3.0, attacks.attack_rng(0, 2, "partition-00001"))
    assert not np.array_equal(noised["w"], other_round["w"])


def test_alie_sets_each_coordinate_to_mean_minus_z_std_of_the_shard_updates() -> None:
    shards = [{"w": SENT["w"] + np.array([1.0, 0.0, 2.0])}, {"w": SENT["w"] + np.array([3.0, 0.0, 4.0])}]
    poisoned = attacks.alie_update(HONEST, SENT, shards, z=1.5)
    # mean (2, 0, 3), sample std (sqrt 2, 0, sqrt 2)
    np.testing.assert_allclose(
        poisoned["w"], SENT["w"] + np.array([2.0, 0.0, 3.0]) - 1.5 * np.array([2**0.5, 0, 2**0.5])
    )
    assert poisoned["steps"] == 9
    with pytest.raises(ValueError, match="at least 2 shard models"):
        attacks.alie_update(HONEST, SENT, shards[:1], z=1.0)


def test_an_inflated_claim_is_k_times_the_count_and_a_whole_number() -> None:
    assert attacks.inflated_claim(600, 10.0) == 6000
    assert attacks.inflated_claim(7, 1.2) == 8
    assert isinstance(attacks.inflated_claim(7, 1.2), int)


def test_label_flip_maps_y_to_c_minus_1_minus_y() -> None:
    np.testing.assert_array_equal(attacks.flipped_labels(np.array([0, 3, 9]), 10), [9, 6, 0])
    assert attacks.flipped_labels(torch.tensor([0, 1]), 2).tolist() == [1, 0]


def test_alie_shards_are_disjoint_and_cover_the_split() -> None:
    shards = attacks.shard_indices(10, 4, 0, 1, "partition-00001")
    assert len(shards) == 4
    assert sorted(np.concatenate(shards).tolist()) == list(range(10))


# --- Who attacks ---------------------------------------------------------------------


def test_attackers_parse_as_a_fraction_or_node_keys() -> None:
    assert attacks.parse_attackers("") == ()
    assert attacks.parse_attackers("0.2") == 0.2
    assert attacks.parse_attackers("partition-00001, partition-00004") == ("partition-00001", "partition-00004")
    for bad in ("1.0", "-0.1", "a,,b", "a,a"):
        with pytest.raises(ValueError, match="attackers"):
            attacks.parse_attackers(bad)


def test_a_fraction_draws_that_many_partitions_from_the_seed() -> None:
    chosen = attacks.attacker_partitions(0.2, 10, 0)
    assert len(chosen) == 2 and chosen <= set(range(10))
    assert attacks.attacker_partitions(0.2, 10, 0) == chosen
    assert len(attacks.attacker_partitions(0.25, 10, 0)) == 3, "round(2.5) ties up"
    assert len({attacks.attacker_partitions(0.2, 10, seed) for seed in range(10)}) > 1, "the seed decides"


def _context(config: dict[str, Any], node_config: dict[str, Any]) -> Context:
    return Context(run_id=1, node_id=1, node_config=node_config, state=RecordDict(), run_config=config)


def test_the_same_seed_makes_the_same_attackers_in_simulation_and_in_deployment(tmp_path: Any) -> None:
    """Each node decides for itself; the simulated node, a deployed node with a name holding the same partition,
    and the server's record agree."""
    config = run_config(attack="sign-flip", attackers=0.3, seed=7)
    simulated = [Node.from_context(_context(config, {"partition-id": p, "num-partitions": 10})) for p in range(10)]
    deployed = [
        Node.from_context(_context(config, {"partition-id": p, "num-partitions": 10, "node-name": f"edge-{p}"}))
        for p in range(10)
    ]
    attacking = [node.key for node in simulated if node.attack == "sign-flip"]
    assert len(attacking) == 3
    assert [node.attack for node in deployed] == [node.attack for node in simulated]
    summary = attacks.announce_attack(RunConfig.from_mapping(config), [10], own_data_nodes=0)
    assert summary["attack"]["attackers"] == attacking
    honest = run_config(seed=7)
    assert all(
        Node.from_context(_context(honest, {"partition-id": p, "num-partitions": 10})).attack is None for p in range(10)
    )


def test_a_node_with_its_own_data_attacks_when_named_and_cannot_be_drawn_by_fraction(tmp_path: Any) -> None:
    named = run_config(attack="scale", attackers="edge-1")
    own = {"data-path": str(tmp_path), "node-name": "edge-1"}
    assert Node.from_context(_context(named, own)).attack == "scale"
    assert Node.from_context(_context(named, {**own, "node-name": "edge-2"})).attack is None
    drawn = run_config(attack="scale", attackers=0.5)
    with pytest.raises(ConfigError, match=r"'attackers' = '0.5' is a fraction .* 'edge-1'"):
        _ = Node.from_context(_context(drawn, own)).attack
    with pytest.raises(ConfigError, match="1 node\\(s\\) have their own data"):
        attacks.announce_attack(RunConfig.from_mapping(drawn), [], own_data_nodes=1)


def test_the_server_warns_and_records_the_attack(caplog: pytest.LogCaptureFixture) -> None:
    config = RunConfig.from_mapping(run_config(attack="num-examples", attackers="partition-00002,partition-00000"))
    with caplog.at_level(logging.WARNING):
        summary = attacks.announce_attack(config, [3], own_data_nodes=0)
    assert summary == {
        "attack": {
            "attack": "num-examples",
            "attack_scale": 10.0,
            "attackers": ["partition-00002", "partition-00000"],
            "chosen": "named by key",
        }
    }
    assert any("ATTACK EXPERIMENT" in record.getMessage() for record in caplog.records)
    assert attacks.announce_attack(RunConfig.from_mapping(run_config()), [3], own_data_nodes=0) == {}


# --- Config --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"attack": "sign-flip"}, r"'attackers' = '' .* the attacking nodes with attack = 'sign-flip'"),
        ({"attackers": "0.2"}, r"'attackers' = '0.2' .* '' with attack = 'none'"),
        ({"attack": "flip", "attackers": "0.2"}, r"'attack' = 'flip' .* sign-flip, scale, gaussian"),
        ({"attack": "scale", "attackers": 1.0}, r"'attackers' = '1.0' .* a fraction in \[0, 1\)"),
        ({"attack": "scale", "attackers": "a,,b"}, r"'attackers' = 'a,,b' .* distinct node keys"),
        ({"attack": "scale", "attackers": "0.2", "strategy": "scaffold"}, r"'strategy' = 'scaffold' .* fedavg"),
        ({"attack": "label-flip", "attackers": "0.2", "attack_scale": 2.0}, r"'attack-scale' = 2.0 .* no scale"),
        ({"attack": "num-examples", "attackers": "0.2", "attack_scale": 0.5}, r"'attack-scale' = 0.5 .* >= 1"),
        ({"attack": "scale", "attackers": "0.2", "attack_scale": 0.0}, r"'attack-scale' = 0.0 .* > 0"),
        ({"attack_scale": 3.0}, r"'attack-scale' = 3.0 .* attack = 'none'"),
        (
            {"attack": "label-flip", "attackers": "0.2", "task": "regression", "dataset": "diabetes"},
            r"'task' = 'regression' .* attack = 'label-flip'",
        ),
    ],
)
def test_bad_attack_settings_are_refused_in_one_line(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        RunConfig.from_mapping(run_config(**changes))
    assert "\n" not in str(raised.value)


def test_attackers_may_be_given_as_a_number_as_flwr_run_c_parses_it() -> None:
    config = RunConfig.from_mapping(run_config(attack="gaussian", attackers=0.2))
    assert config.attackers == "0.2" and config.to_mapping()["attackers"] == "0.2"
    assert RunConfig.from_mapping(config.to_mapping()) == config


# --- Through the real ClientApp ------------------------------------------------------

PARTITIONS = 30  # a node trains on 1/30 of the MNIST pool: real SGD, fast on a CPU


def _train_messages(nodes: tuple[int, ...]) -> list[Message]:
    train_config = ConfigRecord({SERVER_ROUND: 1, LEARNING_RATE: 0.1, LOCAL_EPOCHS: 1})
    return [
        Message(RecordDict({ARRAYS: initial(), CONFIG: train_config}), dst_node_id=n, message_type=MessageType.TRAIN)
        for n in nodes
    ]


def _replies(config: dict[str, Any], monkeypatch: pytest.MonkeyPatch, nodes: tuple[int, ...] = (1, 2)) -> list[Any]:
    return answer(_train_messages(nodes), config, monkeypatch, num_nodes=PARTITIONS)


@pytest.mark.parametrize(("attack", "factor"), [("sign-flip", -1.0), ("scale", 5.0)])
def test_an_attacking_node_replies_with_its_update_times_k_and_the_others_train_honestly(
    attack: str, factor: float, message_identity: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sign-flip replies sent - (trained - sent), scale sent + 5 (trained - sent) (the defaults); node 1 is honest."""
    sent = to_numpy(initial())
    honest = [to_numpy(r.content[ARRAYS]) for r in _replies(run_config(), monkeypatch)]
    attacked = _replies(run_config(attack=attack, attackers="partition-00001"), monkeypatch)
    untouched, poisoned = (to_numpy(r.content[ARRAYS]) for r in attacked)
    for key, value in sent.items():
        np.testing.assert_array_equal(untouched[key], honest[0][key])
        np.testing.assert_allclose(poisoned[key], value + factor * (honest[1][key] - value), atol=1e-5)
    assert not np.allclose(poisoned["layers.1.weight"], honest[1]["layers.1.weight"])


def test_an_inflated_claim_leaves_the_node_and_the_weights_are_honest(
    message_identity: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    (honest,) = _replies(run_config(), monkeypatch, nodes=(1,))
    (claimed,) = _replies(run_config(attack="num-examples", attackers="partition-00000"), monkeypatch, nodes=(1,))
    assert claimed.content[METRICS][NUM_EXAMPLES] == 10 * honest.content[METRICS][NUM_EXAMPLES]
    for key, value in to_numpy(honest.content[ARRAYS]).items():
        np.testing.assert_array_equal(to_numpy(claimed.content[ARRAYS])[key], value)


def test_a_label_flipping_node_trains_on_flipped_labels(
    message_identity: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = run_config(attack="label-flip", attackers="partition-00000")
    node = Node.from_context(_context(config, {"partition-id": 0, "num-partitions": PARTITIONS}))
    clean = Node.from_context(_context(run_config(), {"partition-id": 0, "num-partitions": PARTITIONS}))
    assert torch.equal(node.data().train.labels, 9 - clean.data().train.labels)
    assert torch.equal(node.data().validation.labels, clean.data().validation.labels), "it is evaluated honestly"
    (honest,) = _replies(run_config(), monkeypatch, nodes=(1,))
    (flipped,) = _replies(config, monkeypatch, nodes=(1,))
    assert not np.allclose(
        to_numpy(flipped.content[ARRAYS])["layers.1.weight"], to_numpy(honest.content[ARRAYS])["layers.1.weight"]
    )


def test_an_alie_node_replies_with_mean_minus_z_std_of_its_shard_models(
    message_identity: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = run_config(attack="alie", attackers="partition-00000", attack_scale=1.5)
    (message,) = _train_messages((1,))
    (reply,) = answer([message], config, monkeypatch, num_nodes=PARTITIONS)
    node = Node.from_context(_context(config, {"partition-id": 0, "num-partitions": PARTITIONS}))
    shard_models = _shard_models(node, message)
    assert len(shard_models) == attacks.ALIE_SHARDS
    (honest,) = _replies(run_config(), monkeypatch, nodes=(1,))
    expected = attacks.alie_update(to_numpy(honest.content[ARRAYS]), to_numpy(initial()), shard_models, 1.5)
    for key, value in to_numpy(reply.content[ARRAYS]).items():
        np.testing.assert_allclose(value, expected[key], atol=1e-6)
