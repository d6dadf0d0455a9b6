"""fedapp's ClientApp: thin handlers that unpack a message, call `training`, and pack the reply.

Each handler reads the run config through `RunConfig` and the node's identity from
its node config: `data-path` (and optionally `node-name`) on an edge node with its own
data, `partition-id`/`num-partitions` in simulation and demos. Data and model objects
are cached per process: simulation actors serve many nodes and rounds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from torch import nn

from fedapp.config import RunConfig
from fedapp.data import DataSpec, NodeData, dataset_shape, load_local_node_data, load_node_data
from fedapp.device import compute_device
from fedapp.models import build_model
from fedapp.protocol import (
    ARRAYS,
    CONFIG,
    EVAL_ACCURACY,
    EVAL_LOSS,
    LEARNING_RATE,
    LOCAL_EPOCHS,
    METRICS,
    NODE,
    NODE_KEY,
    NODE_MODEL,
    NUM_EXAMPLES,
    PROXIMAL_MU,
    SERVER_ROUND,
    TRAIN_LOSS,
)
from fedapp.seeding import torch_generator
from fedapp.training import evaluate, train_sgd

app = ClientApp()


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
        config = RunConfig.from_mapping(context.run_config)
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
        return cls(config, name or f"partition-{partition_id:05d}", partition_id=partition_id, num_partitions=num_partitions)

    def data(self) -> NodeData:
        """This node's train and validation splits."""
        if self.data_path is not None:
            _, num_classes = dataset_shape(self.config.dataset)
            return load_local_node_data(
                self.data_path, self.config.validation_fraction, self.config.seed, self.key, num_classes
            )
        return load_node_data(DataSpec.from_config(self.config), self.partition_id, self.num_partitions)

    def model(self, arrays: ArrayRecord) -> nn.Module:
        """The run's model architecture holding `arrays`."""
        shape, num_classes = dataset_shape(self.config.dataset)
        model = _model_instance(self.config.model, shape, num_classes, self.config.seed)
        model.load_state_dict(arrays.to_torch_state_dict())
        return model


@lru_cache(maxsize=8)
def _model_instance(name: str, shape: tuple[int, ...], num_classes: int, seed: int) -> nn.Module:
    """One model object per architecture and process, reloaded with each message's weights."""
    return build_model(name, shape, num_classes, seed)


def _reply(message: Message, **records: ArrayRecord | MetricRecord | ConfigRecord) -> Message:
    """A reply to `message` carrying `records`."""
    return Message(RecordDict(records), reply_to=message)


@app.query()
def describe(message: Message, context: Context) -> Message:
    """Tell the server this node's stable key and model architecture."""
    node = Node.from_context(context)
    return _reply(message, **{NODE: ConfigRecord({NODE_KEY: node.key, NODE_MODEL: node.config.model})})


@app.train()
def train(message: Message, context: Context) -> Message:
    """Run local SGD from the global weights; reply with the new weights."""
    node = Node.from_context(context)
    instructions = message.content[CONFIG]
    model = node.model(message.content[ARRAYS])
    data = node.data()
    result = train_sgd(
        model,
        data.train,
        epochs=int(instructions[LOCAL_EPOCHS]),
        batch_size=node.config.batch_size,
        learning_rate=float(instructions[LEARNING_RATE]),
        generator=torch_generator(node.config.seed, "train", int(instructions[SERVER_ROUND]), node.key),
        proximal_mu=float(instructions.get(PROXIMAL_MU, 0.0)),
        device=compute_device(),
    )
    metrics = MetricRecord({NUM_EXAMPLES: result.examples, TRAIN_LOSS: result.loss})
    return _reply(message, **{ARRAYS: ArrayRecord(_cpu_state(model)), METRICS: metrics})


@app.evaluate()
def evaluate_global(message: Message, context: Context) -> Message:
    """Evaluate the global weights on this node's validation split."""
    node = Node.from_context(context)
    model = node.model(message.content[ARRAYS])
    validation = node.data().validation
    loss, accuracy = evaluate(model, validation, compute_device())
    metrics = MetricRecord({NUM_EXAMPLES: len(validation), EVAL_LOSS: loss, EVAL_ACCURACY: accuracy})
    return _reply(message, **{METRICS: metrics})


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state_dict on the CPU, detached (what goes over the wire)."""
    return {key: value.detach().cpu() for key, value in model.state_dict().items()}
