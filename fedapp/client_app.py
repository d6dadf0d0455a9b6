"""fedapp's ClientApp: thin handlers that unpack a message, call `training`, and pack the reply.

Each handler reads the run config through `RunConfig` and the node's identity from
its node config: `data-path` (and optionally `node-name`) on an edge node with its own
data, `partition-id`/`num-partitions` in simulation and demos. Data, model objects,
parsed run configs and the last global weights decoded are cached per process:
simulation actors serve many nodes and rounds. Every message first passes
`receive_broadcast` (arrays shared by reference in simulation, `broadcast.py`); a
train message may ask the node to evaluate the weights it brings before training
(`evaluate_received`, `federated-evaluation = "with-train"`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import fixedclipping_mod
from flwr.clientapp.typing import ClientAppCallable
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM
from torch import nn

from fedapp.broadcast import receive_broadcast
from fedapp.config import RunConfig, refuse_seeded_noise
from fedapp.data import DataSpec, NodeData, dataset_shape, load_local_node_data, load_node_data, load_public_features
from fedapp.device import compute_device
from fedapp.faults import RAISE, InjectedFaultError, corrupt, fault_injection_enabled
from fedapp.models import build_model
from fedapp.protocol import EVALUATE_RECEIVED, EVALUATION, LOCAL_MODEL, NODE, NODE_KEY, NODE_MODEL, NODE_PARTITIONS
from fedapp.training import evaluate, fit_soft_labels, full_batch_gradient, predict_soft_labels, train_sgd
from strategies.arrays import reply_arrays, to_record
from strategies.protocol import (
    ARRAYS,
    CONFIG,
    CONSENSUS,
    EVAL_ACCURACY,
    EVAL_LOSS,
    LEARNING_RATE,
    LOCAL_EPOCHS,
    METRICS,
    NUM_EXAMPLES,
    PROXIMAL_MU,
    SERVER_ROUND,
    SOFT_LABELS,
    TRAIN_LOSS,
)
from strategies.seeding import torch_generator

app = ClientApp(mods=[receive_broadcast])


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

    def data(self) -> NodeData:
        """This node's train and validation splits."""
        if self.data_path is not None:
            _, num_classes = dataset_shape(self.config.dataset)
            return load_local_node_data(
                self.data_path, self.config.validation_fraction, self.config.seed, self.key, num_classes
            )
        return load_node_data(DataSpec.from_config(self.config), self.partition_id, self.num_partitions)

    def public_features(self) -> torch.Tensor:
        """The unlabelled public set shared with the server (federated distillation)."""
        return load_public_features(DataSpec.from_config(self.config))

    def model(self, arrays: ArrayRecord | None = None) -> nn.Module:
        """This node's architecture holding `arrays` (or its seeded initial weights)."""
        shape, num_classes = dataset_shape(self.config.dataset)
        if arrays is None:
            return build_model(self.architecture, shape, num_classes, self.config.seed)
        model = _model_instance(self.architecture, shape, num_classes, self.config.seed)
        model.load_state_dict(_state_dict(arrays))
        return model

    def generator(self, purpose: str, server_round: int) -> torch.Generator:
        """The random stream for `purpose` in `server_round` on this node (same in every run)."""
        return torch_generator(self.config.seed, purpose, server_round, self.key)


@lru_cache(maxsize=8)
def _model_instance(name: str, shape: tuple[int, ...], num_classes: int, seed: int) -> nn.Module:
    """One model object per architecture and process, reloaded with each message's weights."""
    return build_model(name, shape, num_classes, seed)


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
    description = ConfigRecord({NODE_KEY: node.key, NODE_MODEL: node.architecture, NODE_PARTITIONS: node.partitions})
    return _reply(message, **{NODE: description})


def clip_if_requested(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Flower's `fixedclipping_mod`, applied when the server asks for clipping (dp=client-fixed).

    The mod errors on messages without a clipping norm, so it cannot be attached
    unconditionally; it sits on the train handler only (not on evaluation).
    """
    if KEY_CLIPPING_NORM in message.content[CONFIG]:
        return fixedclipping_mod(message, context, call_next)
    return call_next(message, context)


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
    if fault is not None:
        reply.content[ARRAYS] = to_record(corrupt(reply_arrays(reply.content), fault))
    return reply


def evaluate_received(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """If the server asks (`federated-evaluation = "with-train"`), evaluate the received weights before training.

    The weights a train message brings are the previous round's global model; their
    loss and accuracy on this node's validation split go back under `EVALUATION`,
    beside the training result, so one exchange serves both. Evaluation changes no
    weight and draws no random number, so training is exactly as without it.
    """
    if not message.content[CONFIG].get(EVALUATE_RECEIVED, False):
        return call_next(message, context)
    node = Node.from_context(context)
    validation = node.data().validation
    loss, accuracy = evaluate(node.model(message.content[ARRAYS]), validation, compute_device())
    reply = call_next(message, context)
    if not reply.has_error():
        reply.content[EVALUATION] = ConfigRecord(
            {NUM_EXAMPLES: len(validation), EVAL_LOSS: loss, EVAL_ACCURACY: accuracy}
        )
    return reply


@app.train(mods=[evaluate_received, inject_faults, clip_if_requested])
def train(message: Message, context: Context) -> Message:
    """Run local SGD from the global weights; reply with the new weights.

    A node with its own data refuses to train for a run whose DP noise is seeded
    (anyone could subtract it), whatever server sent the message.
    """
    node = Node.from_context(context)
    refuse_seeded_noise(node.config, own_data_nodes=node.partitions == 0)
    instructions = message.content[CONFIG]
    model = node.model(message.content[ARRAYS])
    server_round = int(instructions[SERVER_ROUND])
    result = train_sgd(
        model,
        node.data().train,
        epochs=int(instructions[LOCAL_EPOCHS]),
        batch_size=node.config.batch_size,
        learning_rate=float(instructions[LEARNING_RATE]),
        generator=node.generator("train", server_round),
        proximal_mu=float(instructions.get(PROXIMAL_MU, 0.0)),
        device=compute_device(),
    )
    metrics = MetricRecord({NUM_EXAMPLES: result.examples, TRAIN_LOSS: result.loss})
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
    """Federated distillation: digest the consensus, train privately, reply with soft labels."""
    node = Node.from_context(context)
    instructions = message.content[CONFIG]
    server_round = int(instructions[SERVER_ROUND])
    own = message.content[ARRAYS] if ARRAYS in message.content else context.state.get(LOCAL_MODEL)
    model = node.model(own)
    public = node.public_features()
    device = compute_device()
    if CONSENSUS in message.content and node.config.digest_epochs > 0:
        consensus = message.content[CONSENSUS].to_torch_state_dict()[SOFT_LABELS]
        fit_soft_labels(
            model,
            public,
            consensus,
            epochs=node.config.digest_epochs,
            batch_size=node.config.batch_size,
            learning_rate=node.config.distill_learning_rate,
            temperature=node.config.distill_temperature,
            generator=node.generator("digest", server_round),
            device=device,
        )
    result = train_sgd(
        model,
        node.data().train,
        epochs=int(instructions[LOCAL_EPOCHS]),
        batch_size=node.config.batch_size,
        learning_rate=float(instructions[LEARNING_RATE]),
        generator=node.generator("train", server_round),
        device=device,
    )
    context.state[LOCAL_MODEL] = ArrayRecord(_cpu_state(model))
    soft = predict_soft_labels(model, public, node.config.distill_temperature, device)
    metrics = MetricRecord({NUM_EXAMPLES: result.examples, TRAIN_LOSS: result.loss})
    return _reply(message, **{ARRAYS: ArrayRecord({SOFT_LABELS: soft}), METRICS: metrics})


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


def _evaluation_reply(message: Message, node: Node, model: nn.Module) -> Message:
    validation = node.data().validation
    loss, accuracy = evaluate(model, validation, compute_device())
    metrics = MetricRecord({NUM_EXAMPLES: len(validation), EVAL_LOSS: loss, EVAL_ACCURACY: accuracy})
    return _reply(message, **{METRICS: metrics})


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state_dict on the CPU, detached (what goes over the wire)."""
    return {key: value.detach().cpu() for key, value in model.state_dict().items()}
