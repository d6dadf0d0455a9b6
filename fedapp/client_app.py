"""fedapp's ClientApp: thin handlers that unpack a message, call `training`, and pack the reply.

Each handler reads the run config through `RunConfig` and the node's identity from
its node config: `data-path` (and optionally `node-name`) on an edge node with its own
data, `partition-id`/`num-partitions` in simulation and demos. Data, model objects,
parsed run configs and the last global weights decoded are cached per process:
simulation actors serve many nodes and rounds. Every message first passes
`packed_transport` (arrays packed on the wire in deployment, `packing.py`) and
`receive_broadcast` (arrays shared by reference in simulation, `broadcast.py`); a
train message may ask the node to evaluate the weights it brings before training
(`evaluate_received`, `federated-evaluation = "with-train"`).

In federated distillation (FD, FedMD) a node keeps its own model for the whole run in
its Flower `Context.state` (`LOCAL_MODEL`), which Flower keeps per run and node in
simulation and in deployment; a new run (a resumed one too) starts from the node's
initial model. After its round the node reports its model's accuracy on its validation
split and, when it holds a share of the run's dataset (simulation and demos, which
can load the run's held-out test set as the server does), on that test set; a node
with its own data (`data-path`) has no such test set and reports validation only.

What a node keeps between rounds for SCAFFOLD, FedBN and Ditto is on its disk
(`node_state.py`), so that it survives a resumed run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from logging import INFO, WARNING
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable
from flwr.common import log
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM
from torch import nn

from fedapp import attacks
from fedapp.broadcast import receive_broadcast
from fedapp.client_clipping import clip_reply
from fedapp.config import RunConfig, refuse_seeded_noise
from fedapp.data import (
    DataError,
    DataSpec,
    LabelledSplit,
    NodeData,
    SourceSpec,
    data_source,
    load_local_node_data,
    load_node_data,
    load_public_split,
    load_test_split,
    run_schema,
)
from fedapp.data.images import augmentation
from fedapp.device import compute_device
from fedapp.evaluation import run_model
from fedapp.faults import BAD_CLAIM, CLAIM, RAISE, InjectedFaultError, corrupt, fault_injection_enabled
from fedapp.logical_clients import PACKED_ACTION, serve_clients
from fedapp.models import batch_norm_keys, build_model
from fedapp.node_state import NodeStateStore
from fedapp.packing import packed_transport
from fedapp.protocol import (
    EVALUATE_RECEIVED,
    EVALUATION,
    EVALUATION_KEYS,
    LOCAL_MODEL,
    NODE,
    NODE_KEY,
    NODE_MODEL,
    NODE_PARTITION_ID,
    NODE_PARTITIONS,
    PERSONAL_STATE,
)
from fedapp.training import (
    Augment,
    ExtraLoss,
    LabelLogitSums,
    LogitObserver,
    TrainResult,
    evaluate,
    fit_logits,
    full_batch_gradient,
    predict_logits,
    train_ditto,
    train_scaffold,
    train_sgd,
)
from strategies.arrays import Arrays, reply_arrays, to_numpy, to_record
from strategies.consensus import alignment_subset
from strategies.label_logits import label_means
from strategies.losses import label_distillation_term
from strategies.personalization import personal_arrays
from strategies.protocol import (
    ARRAYS,
    CONFIG,
    CONSENSUS,
    CONSENSUS_ROUND,
    CONTROL_VARIATE,
    DITTO_LAMBDA,
    HAS_TEACHER,
    LABEL_LOGITS,
    LABEL_PRESENCE,
    LEARNING_RATE,
    LOCAL_EPOCHS,
    LOCAL_STEPS,
    METRICS,
    NUM_EXAMPLES,
    PERSONAL_ACCURACY,
    PERSONAL_LOSS,
    PERSONAL_TRAIN_LOSS,
    PROXIMAL_MU,
    PUBLIC_LOGITS,
    SERVER_ROUND,
    TEACHER,
    TEST_ACCURACY,
    TEST_LOSS,
    TRAIN_LOSS,
    VALIDATION_ACCURACY,
)
from strategies.seeding import torch_generator

Weights = ArrayRecord | Mapping[str, torch.Tensor]

app = ClientApp(mods=[packed_transport, receive_broadcast])


@dataclass(frozen=True)
class Node:
    """This node as the run sees it: the run config, its stable key and where its data is.

    A node trains either on its own dataset (`data-path` in its node config: an edge
    node) or on partition `partition-id` of `num-partitions` of the run's dataset
    (simulation and demos). Its key names it to the server, which orders and samples
    nodes by key: `node-name` if given, else the data path or the partition.
    """

    config: RunConfig
    key: str
    data_path: str | None = None
    partition_id: int = 0
    num_partitions: int = 1

    @classmethod
    def from_context(cls, context: Context) -> Node:
        """Read the run config and the node's identity and data source from Flower's `Context`."""
        config = _run_config(tuple(context.run_config.items()))
        node_config = context.node_config
        name = str(node_config.get("node-name", ""))
        if "data-path" in node_config:
            data_path = os.path.abspath(os.path.expanduser(str(node_config["data-path"])))
            return cls(config, name or data_path, data_path=data_path)
        try:
            partition_id = int(node_config["partition-id"])
            num_partitions = int(node_config["num-partitions"])
        except KeyError as missing:
            raise ValueError(
                f"node config lacks {missing}; start the SuperNode with --node-config "
                "'data-path=\"/path/to/its/data\"' (its own dataset) or 'partition-id=<i> num-partitions=<n>' "
                "(a share of the run's dataset, for demos)"
            ) from None
        return cls.for_partition(config, partition_id, num_partitions, name)

    @classmethod
    def for_partition(cls, config: RunConfig, partition_id: int, num_partitions: int, name: str = "") -> Node:
        """The simulated node holding partition `partition_id` of `num_partitions` (key `partition-00042`)."""
        return cls(
            config, name or f"partition-{partition_id:05d}", partition_id=partition_id, num_partitions=num_partitions
        )

    @property
    def partitions(self) -> int:
        """How many shares the run's dataset is cut into for this node (0: it has its own data)."""
        return 0 if self.data_path is not None else self.num_partitions

    @property
    def architecture(self) -> str:
        """This node's model architecture (the server's, unless `client-model` says otherwise)."""
        return self.config.client_model_for(self.partition_id)

    @property
    def attack(self) -> str | None:
        """The attack this node runs when `attackers` names or draws it (research runs only), else None."""
        config = self.config
        if config.attack == attacks.NO_ATTACK or not attacks.is_attacker(
            config.attackers, config.seed, self.key, self.partition_id, self.partitions
        ):
            return None
        _log_attack(self.key, config.attack)
        return config.attack

    def data(self) -> NodeData:
        """This node's train and validation splits; a `label-flip` attacker's training labels are flipped."""
        data = self._loaded_data()
        if self.attack != attacks.LABEL_FLIP:
            return data
        labels = attacks.flipped_labels(data.train.labels, run_schema(self.config).num_classes)
        return replace(data, train=replace(data.train, labels=labels))

    def _loaded_data(self) -> NodeData:
        """This node's train and validation splits as loaded."""
        if self.data_path is not None:
            source = data_source(self.config)
            if not isinstance(source, SourceSpec):
                raise DataError("dataset 'synthetic' is generated, not read: a node with a data-path needs another")
            data = load_local_node_data(
                self.data_path,
                source,
                run_schema(self.config),
                self.config.validation_fraction,
                self.config.seed,
                self.key,
            )
            _log_loaded_data(self.key, self.data_path, len(data.train), len(data.validation))
            return data
        return load_node_data(DataSpec.from_config(self.config), self.partition_id, self.num_partitions)

    def augmentation(self) -> Augment | None:
        """The training-batch augmentation `augment` asks for (None for "none")."""
        return augmentation(self.config.augment, run_schema(self.config).input_shape)

    def public_split(self) -> LabelledSplit:
        """The public set shared with the server (FedMD), with the labels its transfer learning uses."""
        return load_public_split(DataSpec.from_config(self.config))

    def test_split(self) -> LabelledSplit | None:
        """The run's held-out test set, for a node holding a share of the run's dataset; None for own data."""
        return load_test_split(data_source(self.config)) if self.data_path is None else None

    def model(self, arrays: Weights | None = None, role: str = "global") -> nn.Module:
        """This node's architecture holding `arrays` (or its seeded initial weights).

        Models holding arrays are reused per process, one per `role`: a handler that needs
        two models at once (Ditto's global copy and personal model) gives them different roles.
        """
        schema = run_schema(self.config)
        if arrays is None:
            return run_model(self.config, schema, self.architecture)
        model = _model_instance(
            self.architecture,
            schema.input_shape,
            schema.num_outputs,
            self.config.seed,
            self.config.hidden_layer_sizes,
            role,
        )
        model.load_state_dict(_state_dict(arrays) if isinstance(arrays, ArrayRecord) else dict(arrays))
        return model

    def generator(self, purpose: str, server_round: int) -> torch.Generator:
        """The random stream for `purpose` in `server_round` on this node (same in every run)."""
        return torch_generator(self.config.seed, purpose, server_round, self.key)

    def state(self, instructions: ConfigRecord) -> NodeStateStore:
        """Where this node keeps its state for the scope and round a message names."""
        return NodeStateStore.for_message(instructions, self.key)

    def sgd_settings(self, instructions: ConfigRecord) -> dict[str, Any]:
        """The local SGD settings of a train message: epochs, batch, learning rate, data order, momentum."""
        return {
            "epochs": int(instructions[LOCAL_EPOCHS]),
            "batch_size": self.config.batch_size,
            "learning_rate": float(instructions[LEARNING_RATE]),
            "generator": self.generator("train", int(instructions[SERVER_ROUND])),
            "momentum": self.config.client_momentum,
            "device": compute_device(),
            "augment": self.augmentation(),
        }


@lru_cache(maxsize=16)
def _log_loaded_data(key: str, path: str, train: int, validation: int) -> None:
    """Log, once per process, which data an edge node loaded and how many samples: its log tells what it trains on."""
    log(INFO, "[fedapp] node %s: %d training + %d validation samples from %s", key, train, validation, path)


@lru_cache(maxsize=16)
def _log_attack(key: str, attack: str) -> None:
    """Warn, once per process, that this node attacks: its log must say so."""
    log(WARNING, "[fedapp] node %s is an ATTACKER (attack=%s, research run)", key, attack)


@lru_cache(maxsize=8)
def _model_instance(
    name: str,
    shape: tuple[int, ...],
    num_outputs: int,
    seed: int,
    hidden_sizes: tuple[int, ...],
    role: str,  # noqa: ARG001 (part of the cache key: one instance per role)
) -> nn.Module:
    """One model object per architecture, role and process, reloaded with each message's weights."""
    return build_model(name, shape, num_outputs, seed, hidden_sizes)


@lru_cache(maxsize=4)
def _run_config(items: tuple[tuple[str, Any], ...]) -> RunConfig:
    """The validated run config of these (key, value) items, parsed once per process and run."""
    return RunConfig.from_mapping(dict(items))


class _DecodedArrays:
    """The tensors of the last `ArrayRecord` decoded in this process.

    In simulation the round's global record is one object for all the messages a
    worker process serves (`broadcast.py`); it is decoded for the first and reused.
    The record is held, so its identity cannot be taken by another object.
    """

    record: ArrayRecord | None = None
    state: dict[str, torch.Tensor] = {}  # noqa: RUF012 (one per process, replaced whole)


def _state_dict(arrays: ArrayRecord) -> dict[str, torch.Tensor]:
    """`arrays` as a PyTorch state_dict, decoded once while it stays the latest record seen."""
    if _DecodedArrays.record is not arrays:
        _DecodedArrays.state = arrays.to_torch_state_dict()
        _DecodedArrays.record = arrays
    return _DecodedArrays.state


def _reply(message: Message, **records: ArrayRecord | MetricRecord | ConfigRecord) -> Message:
    """A reply to `message` carrying `records`."""
    return Message(RecordDict(records), reply_to=message)


@app.query()
def describe(message: Message, context: Context) -> Message:
    """Tell the server this node's stable key, model architecture and partition count."""
    node = Node.from_context(context)
    description = ConfigRecord(
        {
            NODE_KEY: node.key,
            NODE_MODEL: node.architecture,
            NODE_PARTITIONS: node.partitions,
            NODE_PARTITION_ID: node.partition_id if node.partitions else -1,
        }
    )
    return _reply(message, **{NODE: description})


@app.train(PACKED_ACTION)
def train_clients(message: Message, context: Context) -> Message:
    """Logical clients (simulation): train each client the message lists, in its own context (`logical_clients.py`)."""
    return serve_clients(app, message, context)


@app.evaluate(PACKED_ACTION)
def evaluate_clients(message: Message, context: Context) -> Message:
    """Logical clients (simulation): evaluate on each client the message lists, in its own context."""
    return serve_clients(app, message, context)


def clip_if_requested(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Clip the reply's update when the server asks for it (dp=client-fixed), as Flower's `fixedclipping_mod` does.

    `clip_reply` clips the floating-point arrays only (BatchNorm's integer step counters
    are neither measured nor scaled); it sits on the train handler only (not on evaluation).
    """
    if KEY_CLIPPING_NORM not in message.content[CONFIG]:
        return call_next(message, context)
    reply = call_next(message, context)
    return reply if reply.has_error() else clip_reply(message, reply)


def inject_faults(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Test-only: after real training, corrupt this node's reply or raise, as `fault-injection` asks.

    Outside tests (`FEDAPP_ENABLE_FAULT_INJECTION` unset) it only passes the message on:
    a `fault-injection` value is then refused when the handler reads the run config.
    """
    if not fault_injection_enabled():
        return call_next(message, context)
    node = Node.from_context(context)
    fault = node.config.fault_plan.get(node.key)
    reply = call_next(message, context)
    if fault == RAISE:
        raise InjectedFaultError(f"injected fault on node {node.key}")
    if fault == CLAIM:
        reply.content[METRICS][NUM_EXAMPLES] = BAD_CLAIM
    elif fault is not None:
        reply.content[ARRAYS] = to_record(corrupt(reply_arrays(reply.content), fault))
    return reply


def run_attack(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Research: an attacking node (`attackers`) turns its honest training reply into `attack`'s (`attacks.py`).

    `label-flip` already trained on flipped labels (`Node.data`); the others change the
    reply: its claimed examples, or its weights relative to those the message sent.
    """
    node = Node.from_context(context)
    attack = node.attack
    reply = call_next(message, context)
    if attack in (None, attacks.LABEL_FLIP) or reply.has_error():
        return reply
    k = attacks.attack_scale(attack, node.config.attack_scale)
    if attack == attacks.NUM_EXAMPLES:
        reply.content[METRICS][NUM_EXAMPLES] = attacks.inflated_claim(int(reply.content[METRICS][NUM_EXAMPLES]), k)
        return reply
    sent = to_numpy(message.content[ARRAYS])
    honest = reply_arrays(reply.content)
    server_round = int(message.content[CONFIG][SERVER_ROUND])
    if attack == attacks.ALIE:
        attacked = attacks.alie_update(honest, sent, _shard_models(node, message), k)
    else:
        rng = attacks.attack_rng(node.config.seed, server_round, node.key)
        attacked = attacks.poisoned_update(attack, honest, sent, k, rng)
    reply.content[ARRAYS] = to_record(attacked)
    return reply


def _shard_models(node: Node, message: Message) -> list[Arrays]:
    """ALIE's stand-ins for benign nodes: the received model trained on each of `ALIE_SHARDS` disjoint shards.

    Each shard trains for `ALIE_SHARDS` x the local epochs, as many steps as an honest round.
    """
    instructions = message.content[CONFIG]
    server_round = int(instructions[SERVER_ROUND])
    train_split = node.data().train
    shards = attacks.shard_indices(len(train_split), attacks.ALIE_SHARDS, node.config.seed, server_round, node.key)
    models = []
    for index, shard in enumerate(shards):
        model = node.model(message.content[ARRAYS], role="alie-shard")
        positions = torch.from_numpy(shard)
        subset = replace(train_split, features=train_split.features[positions], labels=train_split.labels[positions])
        settings = node.sgd_settings(instructions)
        settings["epochs"] *= len(shards)
        settings["generator"] = node.generator(f"alie-shard-{index}", server_round)
        train_sgd(model, subset, **settings)
        models.append(to_numpy(ArrayRecord(_cpu_state(model))))
    return models


def evaluate_received(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """If the server asks (`federated-evaluation = "with-train"`), evaluate the received weights before training.

    The weights a train message brings are the previous round's global model; its
    means on this node's validation split go back under `EVALUATION`, beside the
    training result, so one exchange serves both. Evaluation changes no weight and
    draws no random number, so training is exactly as without it.
    """
    if not message.content[CONFIG].get(EVALUATE_RECEIVED, False):
        return call_next(message, context)
    node = Node.from_context(context)
    metrics = _evaluation_metrics(node, node.model(message.content[ARRAYS]))
    reply = call_next(message, context)
    if not reply.has_error():
        reply.content[EVALUATION] = ConfigRecord(dict(metrics))
    return reply


def _train_metrics(result: TrainResult, **extra: float) -> MetricRecord:
    """What every local training reports: examples, mean loss and the steps it ran (FedNova needs them)."""
    return MetricRecord({NUM_EXAMPLES: result.examples, TRAIN_LOSS: result.loss, LOCAL_STEPS: result.steps, **extra})


@app.train(mods=[evaluate_received, inject_faults, run_attack, clip_if_requested])
def train(message: Message, context: Context) -> Message:
    """Run local SGD from the global weights; reply with the new weights.

    A node with its own data refuses to train for a run whose DP noise is seeded
    (anyone could subtract it), whatever server sent the message.
    """
    node = Node.from_context(context)
    refuse_seeded_noise(node.config, own_data_nodes=node.partitions == 0)
    instructions = message.content[CONFIG]
    model = node.model(message.content[ARRAYS])
    result = _train_private(node, model, instructions, int(instructions[SERVER_ROUND]))
    return _reply(message, **{ARRAYS: ArrayRecord(_cpu_state(model)), METRICS: _train_metrics(result)})


@dataclass(frozen=True)
class StatefulRequest:
    """A message to a node that keeps state between rounds (SCAFFOLD, FedBN, Ditto), unpacked."""

    node: Node
    instructions: ConfigRecord
    state: NodeStateStore
    received: dict[str, torch.Tensor]

    @classmethod
    def unpack(cls, message: Message, context: Context) -> StatefulRequest:
        """The node, the message's instructions, the node's state they point to, and the global weights."""
        node = Node.from_context(context)
        instructions = message.content[CONFIG]
        return cls(node, instructions, node.state(instructions), message.content[ARRAYS].to_torch_state_dict())

    @property
    def server_round(self) -> int:
        return int(self.instructions[SERVER_ROUND])

    def personal_arrays(self) -> dict[str, torch.Tensor]:
        """The node's own model: the global weights with the arrays it keeps (if any yet) in their place."""
        return personal_arrays(self.received, self.state.load(PERSONAL_STATE))


@app.train("scaffold", mods=[evaluate_received, inject_faults])
def train_with_control_variates(message: Message, context: Context) -> Message:
    """SCAFFOLD: corrected local SGD; reply with the new weights and the change of this node's c_i."""
    request = StatefulRequest.unpack(message, context)
    model = request.node.model(request.received)
    server_control = message.content[CONTROL_VARIATE].to_torch_state_dict()
    client_control = request.state.load(CONTROL_VARIATE) or {k: torch.zeros_like(c) for k, c in server_control.items()}
    result, updated = train_scaffold(
        model,
        request.node.data().train,
        server_control=server_control,
        client_control=client_control,
        **request.node.sgd_settings(request.instructions),
    )
    request.state.save(CONTROL_VARIATE, request.server_round, updated)
    delta = {key: updated[key] - client_control[key] for key in updated}
    return _reply(
        message,
        **{
            ARRAYS: ArrayRecord(_cpu_state(model)),
            CONTROL_VARIATE: ArrayRecord(delta),
            METRICS: _train_metrics(result),
        },
    )


@app.train("fedbn", mods=[inject_faults])
def train_with_local_batch_norm(message: Message, context: Context) -> Message:
    """FedBN: local SGD of the global weights with this node's own BatchNorm layers, which it keeps."""
    request = StatefulRequest.unpack(message, context)
    model = request.node.model(request.personal_arrays())
    result = train_sgd(model, request.node.data().train, **request.node.sgd_settings(request.instructions))
    weights = _cpu_state(model)
    request.state.save(PERSONAL_STATE, request.server_round, {key: weights[key] for key in batch_norm_keys(model)})
    return _reply(message, **{ARRAYS: ArrayRecord(weights), METRICS: _train_metrics(result)})


@app.train("ditto", mods=[inject_faults])
def train_with_personal_model(message: Message, context: Context) -> Message:
    """Ditto: local SGD of the global weights and, on the same batches, of this node's personal model."""
    request = StatefulRequest.unpack(message, context)
    model = request.node.model(request.received)
    personal = request.node.model(request.personal_arrays(), role="personal")
    result, personal_loss = train_ditto(
        model,
        personal,
        request.node.data().train,
        lam=float(request.instructions[DITTO_LAMBDA]),
        **request.node.sgd_settings(request.instructions),
    )
    request.state.save(PERSONAL_STATE, request.server_round, _cpu_state(personal))
    metrics = _train_metrics(result, **{PERSONAL_TRAIN_LOSS: personal_loss})
    return _reply(message, **{ARRAYS: ArrayRecord(_cpu_state(model)), METRICS: metrics})


@app.train("gradient", mods=[evaluate_received, inject_faults])
def gradient(message: Message, context: Context) -> Message:
    """FedSGD: reply with the full-batch gradient of the local loss at the global weights."""
    node = Node.from_context(context)
    model = node.model(message.content[ARRAYS])
    train_split = node.data().train
    gradients, loss = full_batch_gradient(model, train_split, compute_device())
    state = _cpu_state(model)
    arrays = {
        key: gradients[key].cpu() if key in gradients else torch.zeros_like(value) for key, value in state.items()
    }
    metrics = MetricRecord({NUM_EXAMPLES: len(train_split), TRAIN_LOSS: loss})
    return _reply(message, **{ARRAYS: ArrayRecord(arrays), METRICS: metrics})


@app.train("distill", mods=[inject_faults])
def distill(message: Message, context: Context) -> Message:
    """FedMD: digest the consensus, revisit the private data, reply with logits on this round's public subset."""
    node = Node.from_context(context)
    config = node.config
    instructions = message.content[CONFIG]
    server_round = int(instructions[SERVER_ROUND])
    public = node.public_split()
    device = compute_device()
    model = _fedmd_model(node, message, context, public, server_round)
    if CONSENSUS in message.content and config.digest_epochs > 0:
        samples = alignment_subset(
            len(public), config.public_samples_per_round, config.seed, int(instructions[CONSENSUS_ROUND])
        )
        consensus = to_numpy(message.content[CONSENSUS])[PUBLIC_LOGITS]
        fit_logits(
            model,
            public.features[torch.from_numpy(samples)],
            torch.tensor(consensus),
            epochs=config.digest_epochs,
            batch_size=config.digest_batch_size,
            learning_rate=config.distill_learning_rate,
            generator=node.generator("digest", server_round),
            device=device,
        )
    result = _train_private(node, model, instructions, server_round)
    context.state[LOCAL_MODEL] = ArrayRecord(_cpu_state(model))
    samples = alignment_subset(len(public), config.public_samples_per_round, config.seed, server_round)
    logits = predict_logits(model, public.features[torch.from_numpy(samples)], device)
    metrics = MetricRecord({NUM_EXAMPLES: result.examples, TRAIN_LOSS: result.loss, **_own_model_quality(node, model)})
    return _reply(message, **{ARRAYS: ArrayRecord({PUBLIC_LOGITS: logits}), METRICS: metrics})


def _fedmd_model(node: Node, message: Message, context: Context, public: LabelledSplit, server_round: int) -> nn.Module:
    """The party's model: the server's weights if pushed, else its own, else a fresh one after transfer learning."""
    if ARRAYS in message.content:
        return node.model(message.content[ARRAYS])
    if LOCAL_MODEL in context.state:
        return node.model(context.state[LOCAL_MODEL])
    model = node.model()
    train_sgd(
        model,
        public,
        epochs=node.config.transfer_epochs,
        batch_size=node.config.batch_size,
        learning_rate=node.config.learning_rate,
        generator=node.generator("transfer", server_round),
        device=compute_device(),
    )
    return model


@app.train("fd", mods=[inject_faults])
def fd(message: Message, context: Context) -> Message:
    """FD: train with the per-label teacher as a regulariser; reply with the round's per-label average logits."""
    node = Node.from_context(context)
    instructions = message.content[CONFIG]
    server_round = int(instructions[SERVER_ROUND])
    model = node.model(context.state.get(LOCAL_MODEL))
    sums = LabelLogitSums(run_schema(node.config).num_classes)
    regulariser = None
    if TEACHER in message.content and node.config.fd_gamma > 0:
        teacher = to_numpy(message.content[TEACHER])
        regulariser = _label_regulariser(
            torch.tensor(teacher[LABEL_LOGITS]), torch.tensor(teacher[HAS_TEACHER]) > 0, node.config
        )
    result = _train_private(node, model, instructions, server_round, extra_loss=regulariser, observe=sums.observe)
    context.state[LOCAL_MODEL] = ArrayRecord(_cpu_state(model))
    label_sums, counts = sums.numpy()
    presence = (counts > 0).astype("float32")  # which labels, not how many: the server needs no more
    table = {LABEL_LOGITS: label_means(label_sums, counts), LABEL_PRESENCE: presence}
    metrics = MetricRecord({NUM_EXAMPLES: result.examples, TRAIN_LOSS: result.loss, **_own_model_quality(node, model)})
    return _reply(message, **{ARRAYS: to_record(table), METRICS: metrics})


def _label_regulariser(teacher: torch.Tensor, has_teacher: torch.Tensor, config: RunConfig) -> ExtraLoss:
    """FD's gamma * CE(softmax(teacher[y] / T), softmax(logits / T)) as a loss term for `train_sgd`."""
    device = compute_device()
    teacher, has_teacher = teacher.to(device), has_teacher.to(device)

    def term(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return config.fd_gamma * label_distillation_term(
            logits, labels, teacher, has_teacher, config.distill_temperature
        )

    return term


def _train_private(
    node: Node,
    model: nn.Module,
    instructions: ConfigRecord,
    server_round: int,
    extra_loss: ExtraLoss | None = None,
    observe: LogitObserver | None = None,
) -> TrainResult:
    """The round's SGD on the node's private training split, with the epochs, learning rate (and mu) it was
    sent and the run's client momentum."""
    return train_sgd(
        model,
        node.data().train,
        epochs=int(instructions[LOCAL_EPOCHS]),
        batch_size=node.config.batch_size,
        learning_rate=float(instructions[LEARNING_RATE]),
        generator=node.generator("train", server_round),
        proximal_mu=float(instructions.get(PROXIMAL_MU, 0.0)),
        momentum=node.config.client_momentum,
        extra_loss=extra_loss,
        observe=observe,
        device=compute_device(),
        augment=node.augmentation(),
    )


def _own_model_quality(node: Node, model: nn.Module) -> dict[str, float]:
    """The node's own model after the round: accuracy on its validation split and (if it has it) the test set."""
    device = compute_device()
    quality: dict[str, float] = {}
    validation = node.data().validation
    if len(validation):
        quality[VALIDATION_ACCURACY] = evaluate(model, validation, device)["accuracy"]
    test = node.test_split()
    if test is not None:
        means = evaluate(model, test, device)
        quality[TEST_LOSS], quality[TEST_ACCURACY] = means["loss"], means["accuracy"]
    return quality


@app.evaluate()
def evaluate_global(message: Message, context: Context) -> Message:
    """Evaluate the global weights on this node's validation split."""
    node = Node.from_context(context)
    return _evaluation_reply(message, node, node.model(message.content[ARRAYS]))


@app.evaluate("local")
def evaluate_local(message: Message, context: Context) -> Message:
    """Evaluate this node's own model (federated distillation) on its validation split."""
    node = Node.from_context(context)
    return _evaluation_reply(message, node, node.model(context.state.get(LOCAL_MODEL)))


@app.evaluate("personal")
def evaluate_personal(message: Message, context: Context) -> Message:
    """Evaluate the global weights and this node's personal model (FedBN, Ditto) on its validation split.

    A node that has not trained its personal model yet has the global model as its own.
    """
    request = StatefulRequest.unpack(message, context)
    metrics = _evaluation_metrics(request.node, request.node.model(request.received))
    personal_model = request.node.model(request.personal_arrays(), role="personal")
    personal = evaluate(personal_model, request.node.data().validation, compute_device())
    metrics[PERSONAL_LOSS] = personal["loss"]
    if "accuracy" in personal:
        metrics[PERSONAL_ACCURACY] = personal["accuracy"]
    return _reply(message, **{METRICS: metrics})


def _evaluation_reply(message: Message, node: Node, model: nn.Module) -> Message:
    return _reply(message, **{METRICS: _evaluation_metrics(node, model)})


def _evaluation_metrics(node: Node, model: nn.Module) -> MetricRecord:
    """The examples of the node's validation split and `model`'s means on it, under the protocol's keys."""
    validation = node.data().validation
    means = evaluate(model, validation, compute_device())
    return MetricRecord({NUM_EXAMPLES: len(validation), **{EVALUATION_KEYS[k]: v for k, v in means.items()}})


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state_dict on the CPU, detached (what goes over the wire)."""
    return {key: value.detach().cpu() for key, value in model.state_dict().items()}
